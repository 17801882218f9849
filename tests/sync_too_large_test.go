package tests

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// A SoftPro record too large for one record of the event log cannot be
// synced. The run passes over it and still syncs everything else, the
// types after it included, and ends failed, naming it; the next run does
// not stop at it either.
func TestSyncPassesOverARecordTooLargeForTheLogAndNamesIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("big", nil)
	s, srv := simulator(t, sim.Config{Records: 5}, id)
	e.connect(s, srv, id, false)
	big := s.Snapshot(id, domain.SyncContacts)[1].ID
	if _, ok := s.Pad(id, domain.SyncContacts, big, 1<<20); !ok {
		t.Fatal("no record to pad")
	}
	run := e.syncNow(id)
	if run.Status != ingest.RunFailed || !strings.Contains(run.Error, "too large") || !strings.Contains(run.Error, big) {
		t.Fatalf("run: %s %q, want failed naming %s", run.Status, run.Error, big)
	}
	db := e.db()
	for _, typ := range domain.SyncTypes {
		want := len(s.Snapshot(id, typ))
		if typ == domain.SyncContacts {
			want--
		}
		if run.Records[typ] != want {
			t.Errorf("%s: run appended %d records, want %d", typ, run.Records[typ], want)
		}
		eventually(t, 30*time.Second, func() string {
			if got := queryString(t, db, "SELECT count(*) FROM "+syncTables[typ]+" WHERE integration_id = $1", id); got != strconv.Itoa(want) {
				return typ + ": " + got + " rows, want " + strconv.Itoa(want)
			}
			return ""
		})
	}
	if got := queryString(t, db, `SELECT count(*) FROM contacts WHERE integration_id = $1 AND id = $2`, id, big); got != "0" {
		t.Errorf("the record too large was projected: %s", got)
	}
	// Other changes still sync.
	changed, _ := s.Modify(id, domain.SyncTasks, "")
	e.syncNow(id)
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT softpro_updated_at = $3::timestamptz FROM tasks WHERE integration_id = $1 AND id = $2`, id, changed.Record.ID, changed.Record.UpdatedAt)
		if got != "true" {
			return "changed task not synced: " + got
		}
		return ""
	})
}

// The next run starts past a record passed over, so a run that fails after
// passing over one still names it, together with its own failure.
func TestSyncFailingAfterARecordTooLargeStillNamesIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("bigfail", nil)
	s, _ := simulator(t, sim.Config{Records: 5}, id)
	// Documents, pulled after contacts, are refused.
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/v1/documents") {
			http.Error(w, `{"error":"forbidden"}`, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.connect(s, srv, id, false)
	big := s.Snapshot(id, domain.SyncContacts)[1].ID
	if _, ok := s.Pad(id, domain.SyncContacts, big, 1<<20); !ok {
		t.Fatal("no record to pad")
	}
	run := e.syncNow(id)
	if run.Status != ingest.RunFailed || !strings.Contains(run.Error, "403") || !strings.Contains(run.Error, "too large") || !strings.Contains(run.Error, big) {
		t.Fatalf("run: %s %q, want failed with the 403 and naming %s", run.Status, run.Error, big)
	}
	if want := len(s.Snapshot(id, domain.SyncContacts)) - 1; run.Records[domain.SyncContacts] != want {
		t.Errorf("contacts: run appended %d records, want %d", run.Records[domain.SyncContacts], want)
	}
}

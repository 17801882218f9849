package tests

import (
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

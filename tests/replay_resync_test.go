package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

func TestReplayFullResyncReproducesTheSimulatorsData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.syncIntegration("resync", nil)
	s, srv := simulator(t, sim.Config{Records: 40, MaxPage: 25}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 60*time.Second)

	// The read models lose data behind the system's back.
	tamper(t, db, id,
		`DELETE FROM transactions WHERE integration_id=$1`,
		`DELETE FROM contacts WHERE integration_id=$1 AND id IN (SELECT id FROM contacts WHERE integration_id=$1 ORDER BY id LIMIT 5)`)
	if rep := e.consistency(id); rep.Score == 100 {
		t.Fatalf("consistency after deleting rows: %+v", rep)
	}

	status, raw := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/resync", e.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("resync: %d %s", status, raw)
	}
	var rep projections.ResyncReport
	apiData(t, raw, &rep)
	if want := 40 * len(domain.SyncTypes); rep.Synced != want {
		t.Errorf("resync pulled %d records, want every one of %d", rep.Synced, want)
	}
	if rep.Consistency.Score != 100 || len(rep.Consistency.Issues) != 0 {
		t.Errorf("consistency after resync: %d %+v", rep.Consistency.Score, rep.Consistency.Issues)
	}
	e.matchesSimulator(s, id, 30*time.Second)

	// Nothing is left to fill: no log, schedule or read-model gap.
	status, raw = e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps", e.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("gaps: %d %s", status, raw)
	}
	var gaps struct {
		Gaps []projections.Gap `json:"gaps"`
	}
	apiData(t, raw, &gaps)
	if len(gaps.Gaps) != 0 {
		t.Errorf("gaps after resync: %+v", gaps.Gaps)
	}
}

func TestReplayDataSideGapsAreFoundAndFilledByATargetedSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("datagap", nil)
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 25}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 60*time.Second)
	// From here no live projector runs: the fill must apply what it syncs.
	e.shutdown()
	e.roles = app.Roles{Ingest: true, API: true}
	e.launch()

	// SoftPro changes records; no webhook and no sync brings them.
	changed := 0
	for _, typ := range domain.SyncTypes {
		for range 3 {
			if _, ok := s.Modify(id, typ, ""); ok {
				changed++
			}
		}
	}
	status, raw := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps", e.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("gaps: %d %s", status, raw)
	}
	var gaps struct {
		Gaps []projections.Gap `json:"gaps"`
	}
	apiData(t, raw, &gaps)
	var missing int64
	for _, g := range gaps.Gaps {
		if g.Kind != projections.GapData || g.Fill != projections.FillSyncWindow || g.From == nil || g.To.Sub(*g.From) != time.Hour {
			t.Errorf("unexpected gap %+v", g)
		}
		missing += g.Records
	}
	// Modify may pick one record twice.
	if missing == 0 || missing > int64(changed) {
		t.Fatalf("data gaps name %d records, want up to %d: %+v", missing, changed, gaps.Gaps)
	}

	rep := e.fill(id)
	if rep.Synced < int(missing) || len(rep.Errors) != 0 {
		t.Fatalf("fill: %+v", rep)
	}
	replayed := replayedRecords(rep)
	if replayed < int64(rep.Synced) {
		t.Fatalf("fill replayed %d records after syncing %d: %+v", replayed, rep.Synced, rep)
	}
	e.matchesSimulator(s, id, 5*time.Second)
}

// Gap filling and resync pull every type, not only the integration's
// syncTypes: gap detection asks the API about every type, so a data gap of
// a type the schedule leaves out is filled too, and a resync pulls every
// record even of an integration with no syncTypes.
func TestReplayFillAndResyncPullTypesTheIntegrationDoesNotSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 20
	id, _ := e.syncIntegration("notasks", map[string]any{
		"syncTypes": []string{domain.SyncTransactions, domain.SyncContacts, domain.SyncDocuments}})
	bare, _ := e.syncIntegration("notypes", map[string]any{"syncTypes": []string{}})
	s, srv := simulator(t, sim.Config{Records: n, MaxPage: 25}, id, bare)
	e.connect(s, srv, id, false)
	e.connect(s, srv, bare, false)
	e.syncNow(id)
	eventually(t, 30*time.Second, func() string {
		if rep := e.consistency(id); rep.Score != 100 {
			return fmt.Sprintf("the sync is not projected yet: %d", rep.Score)
		}
		return ""
	})

	// A task changes in SoftPro; no sync of the integration pulls tasks.
	if _, ok := s.Modify(id, domain.SyncTasks, ""); !ok {
		t.Fatal("simulator has no task to change")
	}
	var data int64
	for _, g := range e.gaps(id) {
		if g.Kind == projections.GapData {
			data += g.Records
		}
	}
	if data != 1 {
		t.Fatalf("data gaps name %d records, want the changed task", data)
	}
	if rep := e.fill(id); len(rep.Errors) != 0 || rep.Synced < n {
		t.Fatalf("fill: %+v", rep)
	}
	e.matchesSimulator(s, id, 30*time.Second)

	for _, in := range []string{id, bare} {
		status, raw := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+in+"/resync", e.Token, nil)
		if status != http.StatusOK {
			t.Fatalf("resync %s: %d %s", in, status, raw)
		}
		var rep projections.ResyncReport
		apiData(t, raw, &rep)
		if want := n * len(domain.SyncTypes); rep.Synced != want {
			t.Errorf("resync of %s pulled %d records, want every one of %d", in, rep.Synced, want)
		}
	}
	e.matchesSimulator(s, bare, 30*time.Second)
}

// A resync the sync job refuses answers as the sync routes do: 409 and
// the refusal's code, not an opaque 500.
func TestReplayResyncRefusedAnswersLikeASync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	unconnected, _ := e.syncIntegration("unconnected", nil)
	inactive, _ := e.syncIntegration("inactive", map[string]any{"active": false})
	s, srv := simulator(t, sim.Config{Records: 2}, inactive)
	e.connect(s, srv, inactive, false)
	// A refused resync or fill changes nothing: the watermarks the next
	// admitted run resumes from stay where they were.
	db := e.db()
	mark := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, typ := range domain.SyncTypes {
		if _, err := db.Exec(context.Background(), `INSERT INTO sync_watermarks (integration_id, sync_type, watermark) VALUES ($1, $2, $3)`,
			inactive, typ, mark); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, id, code string
	}{
		{name: "no connection", id: unconnected, code: "NO_CONNECTION"},
		{name: "inactive", id: inactive, code: "SYNC_DISABLED"},
	} {
		for _, path := range []string{"/resync", "/sync?wait=true"} {
			status, raw := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+tc.id+path, e.Token, nil)
			var body struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &body); err != nil || status != http.StatusConflict || body.Error.Code != tc.code {
				t.Errorf("%s: POST %s: %d %s, want 409 %s", tc.name, path, status, raw, tc.code)
			}
		}
	}
	var kept int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM sync_watermarks WHERE integration_id = $1 AND watermark = $2`,
		inactive, mark).Scan(&kept); err != nil || kept != len(domain.SyncTypes) {
		t.Errorf("after the refused resyncs %d of %d watermarks are where they were (%v)", kept, len(domain.SyncTypes), err)
	}
}

// A gap fill whose sync fails part way (here on contacts, after the
// transactions were pulled) still applies what the sync appended before
// failing, with no live projector running, and reports the failure.
func TestFillAppliesWhatASyncAppendedBeforeFailing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("partialfill", nil)
	s := sim.New(sim.Config{Seed: 42, Records: 10, MaxPage: 25, Tenants: []string{id}})
	// Once armed, the contacts list answers its first request (the gap
	// detection's) and fails every later one (the sync's).
	var armed atomic.Bool
	var contactsAsked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if armed.Load() && strings.Contains(r.URL.Path, "/v1/"+domain.SyncContacts) && contactsAsked.Add(1) > 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 60*time.Second)
	e.shutdown()
	e.roles = app.Roles{Ingest: true, API: true}
	e.launch()

	for range 3 {
		s.Modify(id, domain.SyncTransactions, "")
		s.Modify(id, domain.SyncContacts, "")
	}
	armed.Store(true)
	rep := e.fill(id)
	if rep.Synced == 0 || len(rep.Errors) == 0 {
		t.Fatalf("fill: %+v, want records synced and the contacts' failure reported", rep)
	}
	replayed := replayedRecords(rep)
	if replayed < int64(rep.Synced) {
		t.Fatalf("fill replayed %d records after its sync appended %d and failed: %+v", replayed, rep.Synced, rep)
	}
}

// replayedRecords is how many records a fill's replays read.
func replayedRecords(rep projections.FillReport) int64 {
	var n int64
	for _, rr := range rep.Replayed {
		n += rr.Records
	}
	return n
}

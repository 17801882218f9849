package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// A SoftPro server whose clock runs an hour ahead stamps one change in the
// future. The watermark must not jump there: changes stamped by the other
// servers afterwards would fall behind it and never be pulled.
func TestSyncRecordStampedInTheFutureDoesNotHideLaterChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("future", nil)
	s, srv := simulator(t, sim.Config{Records: 20, MaxPage: 8, Epoch: time.Now().Add(-time.Hour)}, id)
	e.connect(s, srv, id, false)
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("first run: %+v", run)
	}
	first := s.Snapshot(id, domain.SyncTransactions)[0]
	if _, ok := s.ChangeAt(id, domain.SyncTransactions, first.ID, time.Now().Add(time.Hour)); !ok {
		t.Fatal("change in the future refused")
	}
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded || run.Records[domain.SyncTransactions] == 0 {
		t.Fatalf("run after the skewed change: %+v", run)
	}
	// Now the other servers change records, stamped with the right time
	// (not the future one: a record's updated_at only increases).
	for _, typ := range domain.SyncTypes {
		for _, rec := range s.Snapshot(id, typ)[:3] {
			if _, ok := s.Modify(id, typ, rec.ID); !ok {
				t.Fatal("modify")
			}
		}
	}
	run := e.syncNow(id)
	if run.Status != ingest.RunSucceeded || run.Records[domain.SyncTransactions] < 3 {
		t.Fatalf("run after later changes: %+v", run)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

// A change stamped behind the watermark (a SoftPro server whose clock lags)
// is a data-side gap; filling it syncs from the gap's start, which means
// moving the watermarks back there.
func TestSyncGapFillMovesTheWatermarkBackToTheGap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("lagging", nil)
	now := time.Now()
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 10, Epoch: now}, id)
	e.connect(s, srv, id, false)
	// A contact changes now, so the contacts' watermark is about now.
	if _, ok := s.Modify(id, domain.SyncContacts, ""); !ok {
		t.Fatal("modify")
	}
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("first run: %+v", run)
	}
	e.matchesSimulator(s, id, 60*time.Second)

	// The oldest contact changes, stamped two hours ago: behind the
	// watermark by far more than the overlap.
	old := s.Snapshot(id, domain.SyncContacts)[0]
	at := now.Add(-2 * time.Hour)
	if !old.UpdatedAt.Before(at) {
		t.Fatalf("oldest contact is at %s", old.UpdatedAt)
	}
	if _, ok := s.ChangeAt(id, domain.SyncContacts, old.ID, at); !ok {
		t.Fatal("change refused")
	}
	status, raw := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/gaps/fill", e.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("gaps fill: %d %s", status, raw)
	}
	var rep projections.FillReport
	apiData(t, raw, &rep)
	found := false
	for _, g := range rep.Gaps {
		found = found || (g.Kind == projections.GapData && g.From != nil && !g.From.After(at))
	}
	if !found || len(rep.Errors) != 0 || rep.Synced < 1 {
		t.Fatalf("fill: %+v", rep)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

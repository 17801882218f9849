package tests

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// A gap that cannot be filled is reported in the fill's errors, and the
// others are still filled: here the sync of a sync-failed gap is refused
// by SoftPro while a read-model row deleted behind the system's back is
// refolded from the log.
func TestGapsFillReportsTheGapItCannotFillAndFillsTheOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("a", nil)
	s := sim.New(sim.Config{Seed: 42, Records: 3, Tenants: []string{id}})
	srv, refusing := refusingSimulator(t, s)
	e.connect(s, srv, id, false)
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("first sync: %+v", run)
	}
	e.matchesSimulator(s, id, 60*time.Second)

	refusing.Store(true)
	if run := e.syncNow(id); run.Status != ingest.RunFailed {
		t.Fatalf("refused sync: %+v, want failed", run)
	}
	db := e.db()
	txn := s.Snapshot(id, "transactions")[0].ID
	tamper(t, db, id, `DELETE FROM transactions WHERE integration_id=$1 AND id='`+txn+`'`)

	kinds := map[string]bool{}
	for _, g := range e.gaps(id) {
		kinds[g.Kind] = true
	}
	if !kinds[projections.GapSyncFailed] || !kinds[projections.GapReadModel] {
		t.Fatalf("gaps %v, want %s and %s", kinds, projections.GapSyncFailed, projections.GapReadModel)
	}

	rep := e.fill(id)
	if len(rep.Errors) != 1 || !strings.HasPrefix(rep.Errors[0], projections.GapSyncFailed+": ") || !strings.Contains(rep.Errors[0], "403") {
		t.Errorf("fill errors %q, want one for the %s gap naming the 403", rep.Errors, projections.GapSyncFailed)
	}
	if len(rep.Replayed) == 0 {
		t.Errorf("fill replayed nothing: %+v", rep)
	}
	// The row is back, as the simulator holds it.
	e.matchesSimulator(s, id, 30*time.Second)
}

// refusingSimulator serves s until refusing is set; from then on it
// answers 403 to a sync run's pages, while gap detection's listing (pages
// of 100) still gets its answers.
func refusingSimulator(t *testing.T, s *sim.Sim) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	refusing := &atomic.Bool{}
	inner := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refusing.Load() && r.URL.Query().Get("limit") != "100" {
			http.Error(w, `{"error":"forbidden"}`, http.StatusForbidden)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, refusing
}

// A resync whose sync run the SoftPro API fails answers 502 BAD_GATEWAY
// naming the API's answer: the service is not at fault, the API is.
func TestResyncTheSoftProAPIFailsIsABadGateway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("a", nil)
	s := sim.New(sim.Config{Seed: 7, Records: 2, Tenants: []string{id}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"forbidden"}`, http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	e.connect(s, srv, id, false)
	status, raw := e.call(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/resync", e.Token, nil)
	if code, msg := errCode(raw); status != http.StatusBadGateway || code != "BAD_GATEWAY" || !strings.Contains(msg, "403") {
		t.Fatalf("resync SoftPro refuses: %d %s, want 502 BAD_GATEWAY naming the 403", status, raw)
	}
}

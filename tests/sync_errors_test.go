package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
)

// A page whose JSON is cut off (SoftPro or a proxy failing mid-answer) is
// a transient failure: the page is asked for again, like after a 5xx.
func TestSyncRetriesAPageWithMalformedJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("malformed", nil)
	s, srv := simulator(t, sim.Config{Records: 60, MaxPage: 10, Faults: sim.Faults{Malformed: 0.2}}, id)
	e.connect(s, srv, id, false)
	run := e.syncNow(id)
	st := s.Stats(id)
	if st.InjectedBroken == 0 {
		t.Fatalf("no page was cut off: %+v", st)
	}
	if run.Status != ingest.RunSucceeded || run.Retries != st.InjectedBroken {
		t.Fatalf("run with %d cut-off pages: %+v", st.InjectedBroken, run)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

// A SoftPro that keeps answering with the cursor it was asked with and no
// records never reaches a last page; the run stops and says so instead of
// asking for ever while it holds the lock.
func TestSyncStopsWhenTheAPIPagesWithoutProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("stuck", nil)
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 10, Faults: sim.Faults{Stuck: true}}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	ctx := ctxT(t, 20*time.Second)
	run, err := p.sys.Syncer.Sync(ctx, ingest.SyncRequest{IntegrationID: id})
	if err == nil || ctx.Err() != nil || run.Status != ingest.RunFailed || !strings.Contains(run.Error, "cursor") {
		t.Fatalf("run against a stuck API: %+v, %v (ctx %v)", run, err, ctx.Err())
	}
	if holder, _, _ := p.sys.Locks.Holder(ctx, ingest.SyncLockKey(id)); holder != "" {
		t.Fatalf("lock still held by %s", holder)
	}
	// Once SoftPro pages normally again, the next run syncs everything.
	s.SetFaults(sim.Faults{})
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("next run: %+v", run)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

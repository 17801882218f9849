package tests

import (
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

package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// Gap detection pages the SoftPro API as a sync run does: one that keeps
// sending back a cursor already asked for is given up on, and the request
// answers with an error instead of paging for ever.
func TestGapDetectionStopsWhenTheAPIPagesWithoutProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("stuckgaps", nil)
	// Records changed within the data window (of 90 days of them), more
	// than a page.
	s, srv := simulator(t, sim.Config{Records: 2000, MaxPage: 10, Epoch: time.Now().Add(-time.Hour), Faults: sim.Faults{Stuck: true}}, id)
	e.connect(s, srv, id, false)
	start := time.Now()
	status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps", e.Token, nil)
	if status == http.StatusOK {
		t.Fatalf("gaps against a stuck API: %d %s, want an error", status, body)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("gaps answered after %v", took)
	}
	s.SetFaults(sim.Faults{})
	if status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps", e.Token, nil); status != http.StatusOK {
		t.Fatalf("gaps once the API pages again: %d %s", status, body)
	}
}

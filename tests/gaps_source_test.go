package tests

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/projections"
)

// Gap detection pages the SoftPro API as a sync run does: one that keeps
// sending back a cursor already asked for is given up on instead of paged
// for ever, and the data side is named as not checked, with why, while the
// other sides are still reported.
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
	var rep struct {
		Data struct {
			NotChecked        []string          `json:"notChecked"`
			NotCheckedReasons map[string]string `json:"notCheckedReasons"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &rep); err != nil || status != http.StatusOK ||
		!slices.Equal(rep.Data.NotChecked, []string{projections.SideData}) || !strings.Contains(rep.Data.NotCheckedReasons[projections.SideData], "without progress") {
		t.Fatalf("gaps against a stuck API: %d %s, want 200 naming the data side not checked for the paging", status, body)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("gaps answered after %v", took)
	}
	s.SetFaults(sim.Faults{})
	if status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps", e.Token, nil); status != http.StatusOK || strings.Contains(string(body), "notChecked") {
		t.Fatalf("gaps once the API pages again: %d %s, want every side checked", status, body)
	}
}

package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// A client that stops waiting for POST …/sync?wait=true (a proxy's
// timeout) does not end the run: it goes on and is recorded as it ends.
func TestSyncRunOutlivesAClientThatStopsWaiting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("impatient", nil)
	s, srv := simulator(t, sim.Config{Records: 2, Faults: sim.Faults{Slow: 1, SlowDelay: 200 * time.Millisecond}}, id)
	e.connect(s, srv, id, false)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/api/v1/integrations/softpro/"+id+"/sync?wait=true", nil)
	req.Header.Set("Authorization", "Bearer "+e.Token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d before the run could finish", resp.StatusCode)
	}
	db := e.db()
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT status || ' ' || coalesce(error, '') FROM sync_runs WHERE integration_id = $1`, id)
		if got != "succeeded " {
			return "run: " + got
		}
		return ""
	})
}

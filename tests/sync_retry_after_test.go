package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
)

// TestSyncDoesNotHoldItsLockThroughALongRetryAfter: a 429 whose
// Retry-After is longer than a run waits (5 minutes) fails the run at once,
// releasing the sync lock, and the shared quota stays drained for as long
// as SoftPro asked: the next run fails at once too, without sending a
// request, instead of sleeping with the lock held.
func TestSyncDoesNotHoldItsLockThroughALongRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("retry-after", nil)
	s, srv := simulator(t, sim.Config{Records: 20, MaxPage: 10, Faults: sim.Faults{RateLimited: 1, RetryAfter: 2 * time.Hour}}, id)
	e.connect(s, srv, id, false)

	start := time.Now()
	run := e.syncNow(id)
	if run.Status != ingest.RunFailed || run.RateLimited != 1 || !strings.Contains(run.Error, "asked to wait 2h0m0s") {
		t.Fatalf("run answered Retry-After 2h: %+v", run)
	}
	sent := s.Stats(id).Requests
	run = e.syncNow(id)
	if run.Status != ingest.RunFailed || !strings.Contains(run.Error, "rate limit allows no request") {
		t.Fatalf("run while the quota is drained: %+v", run)
	}
	if got := s.Stats(id).Requests; got != sent {
		t.Errorf("the run after a 2h Retry-After sent %d requests", got-sent)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("two runs took %s", d)
	}
}

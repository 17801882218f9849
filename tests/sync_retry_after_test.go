package tests

import (
	"net/http"
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
// request, instead of sleeping with the lock held. The scheduler status
// shows the quota: whole before, none left for the next 2 hours after.
func TestSyncDoesNotHoldItsLockThroughALongRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("retry-after", nil)
	s, srv := simulator(t, sim.Config{Records: 20, MaxPage: 10, Faults: sim.Faults{RateLimited: 1, RetryAfter: 2 * time.Hour}}, id)
	e.connect(s, srv, id, false)

	quota := func() (limit, remaining int, availableIn time.Duration) {
		t.Helper()
		var st struct {
			Integrations []struct {
				IntegrationID    string
				RateLimit        int
				QuotaRemaining   int
				QuotaAvailableIn string
			}
		}
		status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/sync/status", e.Token, nil)
		if status != http.StatusOK {
			t.Fatalf("sync status: %d %s", status, raw)
		}
		apiData(t, raw, &st)
		for _, in := range st.Integrations {
			if in.IntegrationID != id {
				continue
			}
			if in.QuotaAvailableIn != "" {
				d, err := time.ParseDuration(in.QuotaAvailableIn)
				if err != nil {
					t.Fatalf("quotaAvailableIn %q: %v", in.QuotaAvailableIn, err)
				}
				availableIn = d
			}
			return in.RateLimit, in.QuotaRemaining, availableIn
		}
		t.Fatalf("sync status lacks %s: %s", id, raw)
		return
	}
	// syncIntegration's rateLimit, 100,000 a minute: the bucket holds a tenth.
	if limit, remaining, in := quota(); limit != 100000 || remaining != 10000 || in != 0 {
		t.Fatalf("quota before the run: limit %d, remaining %d, available in %s; want 100000, 10000, now", limit, remaining, in)
	}

	start := time.Now()
	run := e.syncNow(id)
	if run.Status != ingest.RunFailed || run.RateLimited != 1 || !strings.Contains(run.Error, "asked to wait 2h0m0s") {
		t.Fatalf("run answered Retry-After 2h: %+v", run)
	}
	if _, remaining, in := quota(); remaining != 0 || in < 119*time.Minute || in > 2*time.Hour {
		t.Fatalf("quota after a 2h Retry-After: remaining %d, available in %s", remaining, in)
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

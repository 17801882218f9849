package tests

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/handlers/schedule"
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
		in := e.scheduleOf(id)
		if in.QuotaAvailableIn != "" {
			d, err := time.ParseDuration(in.QuotaAvailableIn)
			if err != nil {
				t.Fatalf("quotaAvailableIn %q: %v", in.QuotaAvailableIn, err)
			}
			availableIn = d
		}
		return in.RateLimit, in.QuotaRemaining, availableIn
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

// TestScheduledSyncWaitsOutAnEmptyQuota: a scheduled run that would find
// the shared quota empty for longer than a run waits is not started, as it
// would fail without sending a request; the scheduler starts it once the
// quota is back, so the integration gets no failed run for the slot.
func TestScheduledSyncWaitsOutAnEmptyQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Only the scheduler below runs slots.
	e.shutdown()
	e.roles = app.Roles{Ingest: true, API: true, Project: true}
	e.boot()
	id, _ := e.syncIntegration("quota-wait", map[string]any{"syncEnabled": true})
	const retryAfter = 3 * time.Second
	s, srv := simulator(t, sim.Config{Records: 20, MaxPage: 10, Faults: sim.Faults{RateLimited: 1, RetryAfter: retryAfter}}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	syncer := p.syncer(t, ingest.SyncConfig{MaxRateLimitWait: time.Second}, nil)

	// A manual run meets a 429 asking for longer than a run waits.
	asked := time.Now()
	st, err := syncer.Start(t.Context(), ingest.SyncRequest{IntegrationID: id, Trigger: ingest.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if run, err := st.Execute(t.Context()); err == nil || run.Status != ingest.RunFailed || run.RateLimited != 1 {
		t.Fatalf("run answered Retry-After %s: %+v, %v", retryAfter, run, err)
	}
	s.SetFaults(sim.Faults{})

	// The scheduler's catch-up falls due while the quota is empty.
	var logs logCapture
	sched := schedule.New(schedule.Config{MinInterval: 5, Stagger: 10 * time.Millisecond}, syncer, p.store, p.store,
		slog.New(slog.NewJSONHandler(&logs, nil)))
	runFor(t, sched)
	db := e.db()
	var runs []interval
	eventually(t, 30*time.Second, func() string {
		var statuses string
		if runs, statuses = runIntervals(t, db, id); statuses != "failed,succeeded" {
			return "runs " + statuses + ", want the manual one failed and the scheduled one succeeded"
		}
		return ""
	})
	// The 429 came after asked, and the quota is back retryAfter later.
	if runs[1].from.Before(asked.Add(retryAfter)) {
		t.Errorf("the scheduled run started %s after the manual one was asked for, before the quota was back", runs[1].from.Sub(asked))
	}
	if got := logs.String(); !strings.Contains(got, "sync deferred") {
		t.Errorf("no deferral logged:\n%s", got)
	}
}

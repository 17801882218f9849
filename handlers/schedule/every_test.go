package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

func TestAnchoredEveryFallsOnIntervalsFromItsAnchor(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 11, 29, 10, 15, 5, 0, time.UTC)
	every := 45 * time.Minute
	for _, tt := range []struct {
		name     string
		from, at time.Time
		want     time.Time
	}{
		{name: "before the first interval ends", from: from, at: from.Add(30 * time.Minute), want: from.Add(every)},
		{name: "at a slot, the next one", from: from, at: from.Add(every), want: from.Add(2 * every)},
		{name: "slots missed, the next on the grid", from: from, at: from.Add(3*every + time.Minute), want: from.Add(4 * every)},
		{name: "anchor ahead of the clock", from: from, at: from.Add(-time.Hour), want: from.Add(every)},
		{name: "no anchor", at: from, want: from.Add(every)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (anchoredEvery{every: every, from: tt.from}).Next(tt.at); !got.Equal(tt.want) {
				t.Errorf("Next(%s) = %s, want %s", tt.at, got, tt.want)
			}
		})
	}
}

type noRuns struct{}

func (noRuns) LastRuns(context.Context) (map[string]ingest.SyncRun, error) { return nil, nil }

type noLocks struct{}

func (noLocks) Holder(context.Context, string) (string, time.Duration, error) { return "", 0, nil }

type fullQuota struct{}

func (fullQuota) RemainingQuota(_ context.Context, _ string, q ingest.Quota) (int, time.Duration, error) {
	return q.Limit, 0, nil
}

// An "@every" schedule (45 minutes) falls an interval after the last
// scheduled sync, however long before the scheduler started it was, and
// follows each new one; the status shows the time the scheduler's entry
// falls on.
func TestEveryScheduleCountsFromTheLastScheduledSync(t *testing.T) {
	last := time.Now().UTC().Add(-30 * time.Minute)
	ins := fakeIntegrations{{ID: "int_a", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"},
		SyncFrequency: 45, LastScheduledSyncAt: &last, CreatedAt: last.Add(-time.Hour)}}
	s := New(Config{Stagger: time.Millisecond}, &fakeStarter{}, ins, loadOnce{}, nil)
	run(t, s)
	status := StatusReader{Integrations: ins, Runs: noRuns{}, Locks: noLocks{}, Quotas: fullQuota{}, MinInterval: 5}
	check := func(want time.Time) {
		t.Helper()
		s.mu.Lock()
		e, ok := s.entries["int_a"]
		s.mu.Unlock()
		if !ok || e.spec != "@every 45m" {
			t.Fatalf("entry %+v %v", e, ok)
		}
		if next := s.cron.Entry(e.id).Next; !next.Equal(want) {
			t.Errorf("the scheduler's entry falls at %s, want %s (an interval after the last scheduled sync)", next, want)
		}
		st, err := status.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 1 || st[0].NextRun == nil || !st[0].NextRun.Equal(want) {
			t.Errorf("status %+v: want nextRun %s", st, want)
		}
	}
	check(last.Add(45 * time.Minute))

	// A scheduled run starts (here or in another process) and says so.
	started := time.Now().UTC()
	ins[0].LastScheduledSyncAt = &started
	s.reloadOrRetry(context.Background(), "int_a")
	check(started.Add(45 * time.Minute))
}

// One that never had a scheduled sync counts from its creation.
func TestEveryScheduleWithoutASyncCountsFromCreation(t *testing.T) {
	created := time.Now().UTC().Add(-100 * time.Minute)
	in := domain.Integration{ID: "int_a", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"},
		SyncFrequency: 90, CreatedAt: created}
	_, sched, err := ScheduleOf(in, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sched.Next(created.Add(100*time.Minute)), created.Add(180*time.Minute); !got.Equal(want) {
		t.Fatalf("next %s, want %s", got, want)
	}
}

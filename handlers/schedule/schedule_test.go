package schedule

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

type fakeStarter struct {
	mu   sync.Mutex
	reqs []ingest.SyncRequest
}

func (f *fakeStarter) Start(_ context.Context, req ingest.SyncRequest) (*ingest.StartedSync, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return nil, ingest.ErrSyncAlreadyRan
}

func (f *fakeStarter) requests() []ingest.SyncRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ingest.SyncRequest(nil), f.reqs...)
}

type fakeIntegrations []domain.Integration

func (f fakeIntegrations) List(context.Context) ([]domain.Integration, error) { return f, nil }

func (f fakeIntegrations) Integration(_ context.Context, id string) (domain.Integration, error) {
	for _, in := range f {
		if in.ID == id {
			return in, nil
		}
	}
	return domain.Integration{}, domain.ErrNotFound
}

// loadOnce reports every integration changed once, then waits.
type loadOnce struct{}

func (loadOnce) Listen(ctx context.Context, fn func(id string)) error {
	fn("")
	<-ctx.Done()
	return nil
}

// run runs s until the test ends, once it has loaded the schedules.
func run(t *testing.T, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-s.Loaded()
}

// Runs carry when they fell due: a catch-up the time of its check, a cron
// slot its minute, the same in every process.
func TestRunsCarryWhenTheyFellDue(t *testing.T) {
	now := time.Date(2026, 11, 29, 7, 45, 0, 312_000_000, time.UTC)
	last := now.Add(-2 * time.Hour)
	in := domain.Integration{ID: "int_a", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"},
		SyncFrequency: 15, LastScheduledSyncAt: &last}
	starter := &fakeStarter{}
	s := New(Config{Stagger: time.Millisecond, Now: func() time.Time { return now }}, starter, fakeIntegrations{in}, loadOnce{}, nil)
	run(t, s)
	wait := func(n int) []ingest.SyncRequest {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if reqs := starter.requests(); len(reqs) >= n {
				return reqs
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("%d runs started, want %d", len(starter.requests()), n)
		return nil
	}
	catchUp := wait(1)[0]
	if catchUp.Trigger != ingest.TriggerCatchUp || !catchUp.Due.Equal(now) {
		t.Fatalf("catch-up request %+v, want due %s", catchUp, now)
	}

	s.mu.Lock()
	e, ok := s.entries["int_a"]
	s.mu.Unlock()
	if !ok || e.spec != "*/15 * * * *" {
		t.Fatalf("entry %+v %v", e, ok)
	}
	s.cron.Entry(e.id).Job.Run() // the slot fires
	slot := wait(2)[1]
	if want := now.Truncate(time.Minute); slot.Trigger != ingest.TriggerScheduled || !slot.Due.Equal(want) {
		t.Fatalf("slot request %+v, want due %s", slot, want)
	}
}

// flakyIntegrations fails its first fails reads, as a database that is
// not reachable yet.
type flakyIntegrations struct {
	fakeIntegrations
	mu    sync.Mutex
	fails int
}

func (f *flakyIntegrations) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("connection refused")
	}
	return nil
}

func (f *flakyIntegrations) List(ctx context.Context) ([]domain.Integration, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.fakeIntegrations.List(ctx)
}

func (f *flakyIntegrations) Integration(ctx context.Context, id string) (domain.Integration, error) {
	if err := f.fail(); err != nil {
		return domain.Integration{}, err
	}
	return f.fakeIntegrations.Integration(ctx, id)
}

// A schedule reload and a catch-up that fail while the database is out of
// reach are tried again, without waiting for a change to come.
func TestFailedReloadAndCatchUpAreTriedAgain(t *testing.T) {
	in := domain.Integration{ID: "int_a", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"}, SyncFrequency: 15}
	// The start-up reload, the catch-up and the first retry of both fail.
	store := &flakyIntegrations{fakeIntegrations: fakeIntegrations{in}, fails: 4}
	starter := &fakeStarter{}
	s := New(Config{Stagger: time.Millisecond, RetryEvery: 10 * time.Millisecond}, starter, store, loadOnce{}, nil)
	run(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		e, ok := s.entries["int_a"]
		s.mu.Unlock()
		reqs := starter.requests()
		if ok && e.spec == "*/15 * * * *" && len(reqs) == 1 && reqs[0].Trigger == ingest.TriggerCatchUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry %+v %v, runs %+v: want the schedule loaded and one catch-up run", e, ok, reqs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

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

// flakyStarter fails its first fails starts with err, then refuses the run
// as one another scheduler ran.
type flakyStarter struct {
	err error

	mu    sync.Mutex
	fails int
	reqs  []ingest.SyncRequest
	at    []time.Time
}

func (f *flakyStarter) Start(_ context.Context, req ingest.SyncRequest) (*ingest.StartedSync, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	f.at = append(f.at, time.Now())
	if f.fails > 0 {
		f.fails--
		return nil, f.err
	}
	return nil, ingest.ErrSyncAlreadyRan
}

func (f *flakyStarter) starts() ([]ingest.SyncRequest, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ingest.SyncRequest(nil), f.reqs...), append([]time.Time(nil), f.at...)
}

// A run that could not start because Redis or the database was out of
// reach is tried again, the same run (due at its slot), after RetryEvery
// and then twice as long each time, until it starts or is refused; a run
// refused as invalid is not.
func TestRunThatCouldNotStartIsTriedAgain(t *testing.T) {
	// Daily: no cron slot of its own comes while the test runs (at
	// */15 one in 900 runs saw one, an extra start).
	in := domain.Integration{ID: "int_a", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"}, SyncFrequency: 24 * 60}
	const every = 50 * time.Millisecond
	for _, tt := range []struct {
		name  string
		err   error
		fails int
		want  int
	}{
		{name: "unreachable three times", err: errors.New("lock: dial tcp 127.0.0.1:6379: connect: connection refused"), fails: 3, want: 4},
		{name: "invalid", err: &domain.ValidationError{Problems: []string{`unknown sync type "x"`}}, fails: 3, want: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			starter := &flakyStarter{err: tt.err, fails: tt.fails}
			s := New(Config{Stagger: time.Millisecond, RetryEvery: every}, starter, fakeIntegrations{in}, loadOnce{}, nil)
			run(t, s)
			deadline := time.Now().Add(10 * time.Second)
			for {
				reqs, _ := starter.starts()
				if len(reqs) >= tt.want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d starts, want %d", len(reqs), tt.want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(8 * every) // longer than the next retry would wait
			reqs, at := starter.starts()
			if len(reqs) != tt.want {
				t.Fatalf("%d starts, want %d", len(reqs), tt.want)
			}
			for i := 1; i < len(reqs); i++ {
				if reqs[i].Trigger != reqs[0].Trigger || !reqs[i].Due.Equal(reqs[0].Due) {
					t.Errorf("try %d asked %+v, want the first run again %+v", i+1, reqs[i], reqs[0])
				}
				if gap, least := at[i].Sub(at[i-1]), every<<(i-1); gap < least {
					t.Errorf("try %d came %s after the one before, want at least %s", i+1, gap, least)
				}
			}
		})
	}
}

func TestStartRetryDoublesUpToItsCap(t *testing.T) {
	t.Parallel()
	s := New(Config{RetryEvery: 5 * time.Second}, &fakeStarter{}, fakeIntegrations{}, loadOnce{}, nil)
	for _, tt := range []struct {
		name   string
		failed int
		want   time.Duration
	}{
		{name: "first", failed: 1, want: 5 * time.Second},
		{name: "second", failed: 2, want: 10 * time.Second},
		{name: "sixth", failed: 6, want: 160 * time.Second},
		{name: "capped", failed: 7, want: MaxStartRetry},
		{name: "long after", failed: 1000, want: MaxStartRetry},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.startRetry(tt.failed); got != tt.want {
				t.Errorf("startRetry(%d) = %s, want %s", tt.failed, got, tt.want)
			}
		})
	}
}

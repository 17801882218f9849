package schedule

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// timedStarter records when each run was started.
type timedStarter struct {
	mu     sync.Mutex
	starts []time.Time
}

func (f *timedStarter) Start(context.Context, ingest.SyncRequest) (*ingest.StartedSync, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, time.Now())
	return nil, ingest.ErrSyncAlreadyRan
}

func (f *timedStarter) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.starts...)
}

// Runs due at once (here every integration's catch-up at start) start at
// least the stagger apart.
func TestRunsDueAtOnceStartTheStaggerApart(t *testing.T) {
	const stagger = 400 * time.Millisecond
	var ins fakeIntegrations
	for i := range 4 {
		ins = append(ins, domain.Integration{ID: fmt.Sprintf("int_%d", i), Active: true, SyncEnabled: true,
			SyncTypes: []string{"transactions"}, SyncFrequency: 15})
	}
	starter := &timedStarter{}
	s := New(Config{Stagger: stagger}, starter, ins, loadOnce{}, nil)
	run(t, s)
	deadline := time.Now().Add(30 * time.Second)
	for len(starter.times()) < len(ins) {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs started, want %d", len(starter.times()), len(ins))
		}
		time.Sleep(10 * time.Millisecond)
	}
	starts := starter.times()
	// A start is recorded a goroutine hop after its dispatch, which a busy
	// machine may delay a little; the stagger is far larger than that.
	const slack = 100 * time.Millisecond
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < stagger-slack {
			t.Errorf("runs %d and %d started %s apart, want at least %s", i-1, i, gap, stagger)
		}
	}
}

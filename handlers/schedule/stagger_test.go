package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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

// A slot that falls while the integration's previous one still waits its
// turn to start (more integrations due than start one stagger apart) joins
// it, and says so: the schedule slips.
func TestSlotJoiningOneStillWaitingIsAWarning(t *testing.T) {
	var ins fakeIntegrations
	for i := range 2 {
		ins = append(ins, domain.Integration{ID: fmt.Sprintf("int_%d", i), Active: true, SyncEnabled: true,
			SyncTypes: []string{"transactions"}, SyncFrequency: 15})
	}
	starter := &timedStarter{}
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	// Both catch-ups are due at start: int_1's waits a minute for its turn.
	s := New(Config{Stagger: time.Minute}, starter, ins, loadOnce{}, log)
	run(t, s)
	<-s.Started()
	if strings.Contains(logs.String(), "still waiting to start") {
		t.Fatalf("warned before any slot joined another:\n%s", logs.String())
	}
	s.mu.Lock()
	e := s.entries["int_1"]
	s.mu.Unlock()
	s.cron.Entry(e.id).Job.Run() // int_1's slot falls
	if got := logs.String(); !strings.Contains(got, `"level":"WARN","msg":"sync slot joins the integration's previous one, still waiting to start","integration":"int_1"`) {
		t.Fatalf("logs:\n%s\nwant a warning that int_1's slot joined the one waiting", got)
	}
	if n := len(starter.times()); n > 1 {
		t.Fatalf("%d runs started within the stagger", n)
	}
}

// NoStagger starts runs due at once together.
func TestNoStaggerStartsRunsAsTheyFallDue(t *testing.T) {
	var ins fakeIntegrations
	for i := range 3 {
		ins = append(ins, domain.Integration{ID: fmt.Sprintf("int_%d", i), Active: true, SyncEnabled: true,
			SyncTypes: []string{"transactions"}, SyncFrequency: 15})
	}
	starter := &timedStarter{}
	s := New(Config{Stagger: NoStagger}, starter, ins, loadOnce{}, nil)
	run(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for len(starter.times()) < len(ins) {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs started within 5 s, want %d at once", len(starter.times()), len(ins))
		}
		time.Sleep(time.Millisecond)
	}
}

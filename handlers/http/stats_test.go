package httpapi

import (
	"context"
	"errors"
	"testing"
)

type lagOf struct {
	lag map[string]int64
	err error
}

func (l lagOf) Lag(context.Context) (map[string]int64, error) { return l.lag, l.err }

type pausesOf struct {
	paused map[string]bool
	err    error
}

func (p pausesOf) Paused(context.Context) (map[string]bool, error) { return p.paused, p.err }

// The stats route's queue figures: a lag the broker does not give and
// pauses the database does not give are zero and false, and say so.
func TestQueueStatsMarkWhatDidNotAnswer(t *testing.T) {
	t.Parallel()
	down := errors.New("down")
	for _, tc := range []struct {
		name                string
		lag                 QueueLag
		pauses              QueuePauses
		waiting             int64
		paused              bool
		lagGone, pausedGone bool
	}{
		{name: "both answer", lag: lagOf{lag: map[string]int64{"t": 5}}, pauses: pausesOf{paused: map[string]bool{"t": true}}, waiting: 5, paused: true},
		{name: "lag unavailable", lag: lagOf{err: down}, pauses: pausesOf{paused: map[string]bool{"t": true}}, paused: true, lagGone: true},
		{name: "pauses unavailable", lag: lagOf{lag: map[string]int64{"t": 5}}, pauses: pausesOf{err: down}, waiting: 5, pausedGone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := &queryAPI{QueryDeps{Lag: tc.lag, Pauses: tc.pauses, Topics: []string{"t"}}}
			got := q.queueStats(context.Background(), map[string]*queueStatsView{"t": {QueueName: "t", Completed: 2}})
			if len(got) != 1 {
				t.Fatalf("%d queues, want 1", len(got))
			}
			g := got[0]
			if g.Waiting != tc.waiting || g.Paused != tc.paused || g.Completed != 2 ||
				g.LagUnavailable != tc.lagGone || g.PausedUnavailable != tc.pausedGone {
				t.Errorf("got %+v; want waiting %d, paused %v, completed 2, lagUnavailable %v, pausedUnavailable %v",
					g, tc.waiting, tc.paused, tc.lagGone, tc.pausedGone)
			}
		})
	}
}

package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/projections"
)

type fakeOffsets struct{}

func (fakeOffsets) EndOffsets(context.Context, ...string) (kafka.Offsets, error) {
	return kafka.Offsets{domain.TopicTasks: {0: 7}}, nil
}

type fakeLag struct{ err error }

func (l fakeLag) Lag(context.Context) (map[string]int64, error) {
	if l.err != nil {
		return nil, l.err
	}
	return map[string]int64{domain.TopicTasks: 3}, nil
}

type fakeStats struct {
	from time.Time
	err  error
}

func (s *fakeStats) Stats(_ context.Context, f projections.StatsFilter) ([]projections.Counts, error) {
	s.from = f.Start
	if s.err != nil {
		return nil, s.err
	}
	return []projections.Counts{
		{EventType: domain.TaskCreated, Received: 4, Completed: 2, Failed: 1},
		{EventType: domain.TaskCompleted, Received: 1, Completed: 1},
	}, nil
}

type fakePauses struct{ err error }

func (p fakePauses) Paused(context.Context) (map[string]bool, error) {
	if p.err != nil {
		return nil, p.err
	}
	return map[string]bool{domain.TopicTasks: true}, nil
}

// Health's queue figures: completed and failed from the read models over
// the last 24 hours, and a lag the broker does not give, or counts and
// pauses the database does not give, marked as unknown.
func TestTopicReporterFigures(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	down := errors.New("down")
	for _, tc := range []struct {
		name                string
		lagErr, statsErr    error
		pausesErr           error
		waiting             int64
		completed, failed   int64
		paused              bool
		lagGone, countsGone bool
		pausedGone          bool
	}{
		{name: "all read", waiting: 3, completed: 3, failed: 1, paused: true},
		{name: "lag unavailable", lagErr: down, completed: 3, failed: 1, paused: true, lagGone: true},
		{name: "counts unavailable", statsErr: down, waiting: 3, paused: true, countsGone: true},
		{name: "pauses unavailable", pausesErr: down, waiting: 3, completed: 3, failed: 1, pausedGone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stats := &fakeStats{err: tc.statsErr}
			r := topicReporter{offsets: fakeOffsets{}, lag: fakeLag{err: tc.lagErr}, stats: stats, pauses: fakePauses{err: tc.pausesErr},
				now: func() time.Time { return now }}
			qs, err := r.Queues(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !stats.from.Equal(now.Add(-24 * time.Hour)) {
				t.Errorf("counts from %v, want the last 24 hours", stats.from)
			}
			for _, q := range qs {
				if q.LagUnavailable != tc.lagGone || q.CountsUnavailable != tc.countsGone || q.PausedUnavailable != tc.pausedGone {
					t.Errorf("%s: lagUnavailable %v, countsUnavailable %v, pausedUnavailable %v; want %v, %v, %v", q.QueueName,
						q.LagUnavailable, q.CountsUnavailable, q.PausedUnavailable, tc.lagGone, tc.countsGone, tc.pausedGone)
				}
				if q.QueueName != domain.TopicTasks {
					continue
				}
				if q.Completed != tc.completed || q.Failed != tc.failed || q.Waiting != tc.waiting || q.Appended != 7 || q.Paused != tc.paused {
					t.Errorf("tasks: completed %d, failed %d, waiting %d, appended %d, paused %v; want %d, %d, %d, 7, %v",
						q.Completed, q.Failed, q.Waiting, q.Appended, q.Paused, tc.completed, tc.failed, tc.waiting, tc.paused)
				}
			}
		})
	}
}

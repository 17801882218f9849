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

type fakeStats struct{ from time.Time }

func (s *fakeStats) Stats(_ context.Context, f projections.StatsFilter) ([]projections.Counts, error) {
	s.from = f.Start
	return []projections.Counts{
		{EventType: domain.TaskCreated, Received: 4, Completed: 2, Failed: 1},
		{EventType: domain.TaskCompleted, Received: 1, Completed: 1},
	}, nil
}

type noPauses struct{}

func (noPauses) Paused(context.Context) (map[string]bool, error) { return nil, nil }

// Health's queue figures: completed and failed from the read models over
// the last 24 hours, and a lag the broker does not give marked as unknown.
func TestTopicReporterFigures(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		lagErr      error
		waiting     int64
		unavailable bool
	}{
		{name: "lag read", waiting: 3},
		{name: "lag unavailable", lagErr: errors.New("broker down"), unavailable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stats := &fakeStats{}
			r := topicReporter{offsets: fakeOffsets{}, lag: fakeLag{err: tc.lagErr}, stats: stats, pauses: noPauses{}, now: func() time.Time { return now }}
			qs, err := r.Queues(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !stats.from.Equal(now.Add(-24 * time.Hour)) {
				t.Errorf("counts from %v, want the last 24 hours", stats.from)
			}
			for _, q := range qs {
				if q.LagUnavailable != tc.unavailable {
					t.Errorf("%s: lagUnavailable %v, want %v", q.QueueName, q.LagUnavailable, tc.unavailable)
				}
				if q.QueueName != domain.TopicTasks {
					continue
				}
				if q.Completed != 3 || q.Failed != 1 || q.Waiting != tc.waiting || q.Appended != 7 {
					t.Errorf("tasks: completed %d, failed %d, waiting %d, appended %d; want 3, 1, %d, 7",
						q.Completed, q.Failed, q.Waiting, q.Appended, tc.waiting)
				}
			}
		})
	}
}

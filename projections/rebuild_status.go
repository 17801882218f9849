package projections

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// CheckpointRow is one stored checkpoint with when it last moved.
type CheckpointRow struct {
	Projection string
	Partition
	Next      int64
	UpdatedAt time.Time
}

// LastError is the newest failure of a topic's events.
type LastError struct {
	Error         string    `json:"error"`
	At            time.Time `json:"at"`
	EventID       string    `json:"eventId"`
	IntegrationID string    `json:"integrationId"`
}

// StatusSource reads what the status of the projections is made of.
type StatusSource interface {
	ProjectionCheckpoints(ctx context.Context) ([]CheckpointRow, error)
	LastErrors(ctx context.Context) (map[string]LastError, error)
	// Latest returns the newest runs of kind ("" for every kind), newest
	// first.
	Latest(ctx context.Context, kind RebuildKind, limit int) ([]RebuildRun, error)
}

// Projection states of the status API, a wire contract.
const (
	ProjectionLive       = "live"
	ProjectionRebuilding = "rebuilding"
	ProjectionPaused     = "paused"
)

// PartitionStatus is one partition of a projection.
type PartitionStatus struct {
	Partition int32 `json:"partition"`
	// Checkpoint is the next offset to apply; -1 when none was applied.
	Checkpoint int64      `json:"checkpoint"`
	End        int64      `json:"endOffset"`
	Lag        int64      `json:"lag"`
	UpdatedAt  *time.Time `json:"updatedAt,omitempty"`
}

// ProjectionStatus is one live projection.
type ProjectionStatus struct {
	Name       string            `json:"name"`
	Topic      string            `json:"topic"`
	State      string            `json:"state"`
	Lag        int64             `json:"lag"`
	Partitions []PartitionStatus `json:"partitions"`
	LastError  *LastError        `json:"lastError,omitempty"`
}

// StatusReport is every projection and the rebuild in progress or last
// finished.
type StatusReport struct {
	Projections []ProjectionStatus `json:"projections"`
	Rebuild     *RebuildRun        `json:"rebuild,omitempty"`
}

// ProjectionsStatus reports each projection of names (topic → projection
// name, poison topic included) with its checkpoints, lag per partition
// against the log's end offsets, state and last error.
func ProjectionsStatus(ctx context.Context, src StatusSource, log LogScanner, names map[string]string) (StatusReport, error) {
	topics := make([]string, 0, len(names))
	for t := range names {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	bounds, err := log.Bounds(ctx, topics, time.Time{}, time.Time{})
	if err != nil {
		return StatusReport{}, fmt.Errorf("projections status: %w", err)
	}
	cps, err := src.ProjectionCheckpoints(ctx)
	if err != nil {
		return StatusReport{}, fmt.Errorf("projections status: %w", err)
	}
	lastErr, err := src.LastErrors(ctx)
	if err != nil {
		return StatusReport{}, fmt.Errorf("projections status: %w", err)
	}
	// The newest full rebuild decides the state; as-of builds, which may
	// run beside it, never do.
	runs, err := src.Latest(ctx, KindRebuild, 1)
	if err != nil {
		return StatusReport{}, fmt.Errorf("projections status: %w", err)
	}
	var rep StatusReport
	state := ProjectionLive
	if len(runs) > 0 {
		r := runs[0]
		if r.State.Active() {
			if r.State == StatePaused {
				state = ProjectionPaused
			} else {
				state = ProjectionRebuilding
			}
		}
		rep.Rebuild = &r
	}
	byKey := map[string]map[Partition]CheckpointRow{}
	for _, c := range cps {
		if byKey[c.Projection] == nil {
			byKey[c.Projection] = map[Partition]CheckpointRow{}
		}
		byKey[c.Projection][c.Partition] = c
	}
	for _, t := range topics {
		ps := ProjectionStatus{Name: names[t], Topic: t, State: state, Partitions: []PartitionStatus{}}
		if e, ok := lastErr[t]; ok {
			ps.LastError = &e
		}
		var parts []Partition
		for p := range bounds.End {
			if p.Topic == t {
				parts = append(parts, p)
			}
		}
		slices.SortFunc(parts, func(a, b Partition) int { return int(a.Partition - b.Partition) })
		for _, p := range parts {
			st := PartitionStatus{Partition: p.Partition, Checkpoint: -1, End: bounds.End[p]}
			from := bounds.Start[p]
			if c, ok := byKey[names[t]][p]; ok {
				st.Checkpoint = c.Next
				from = c.Next
				at := c.UpdatedAt
				st.UpdatedAt = &at
			}
			st.Lag = max(st.End-from, 0)
			ps.Lag += st.Lag
			ps.Partitions = append(ps.Partitions, st)
		}
		rep.Projections = append(rep.Projections, ps)
	}
	return rep, nil
}

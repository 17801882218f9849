package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/roisystems/softprohub/projections"
)

// RebuildRuns lists the newest rebuild runs of a kind ("" for every kind),
// newest first, as the run store records them (infra/postgres.RebuildRuns).
type RebuildRuns interface {
	Latest(ctx context.Context, kind projections.RebuildKind, limit int) ([]projections.RebuildRun, error)
}

// Pauses tells which topics' live projections are paused. The only pause is
// a rebuild's swap, which holds the live projectors of every process (see
// projections.RebuildTarget.Pause) and may run in another process, so the
// answer comes from the runs the rebuild records, read when asked, and
// follows the projections status (projections.ProjectionsStatus): a topic
// is paused while the newest rebuild run covering its projection is in
// state paused. Safe for concurrent use.
type Pauses struct {
	runs  RebuildRuns
	names map[string]string
}

// NewPauses returns the pauses of the projections in names (topic →
// projection name); runs is required.
func NewPauses(runs RebuildRuns, names map[string]string) *Pauses {
	if runs == nil {
		panic("events: NewPauses needs a run store")
	}
	return &Pauses{runs: runs, names: names}
}

// Paused returns the topics whose projection is paused; every other topic
// of names is absent.
func (p *Pauses) Paused(ctx context.Context) (map[string]bool, error) {
	rep, err := projections.ProjectionsStatus(ctx, runsOnly{p.runs}, noLog{}, p.names)
	if err != nil {
		return nil, fmt.Errorf("paused projections: %w", err)
	}
	out := map[string]bool{}
	for _, s := range rep.Projections {
		if s.State == projections.ProjectionPaused {
			out[s.Topic] = true
		}
	}
	return out, nil
}

// runsOnly is the part of the status the state is made of: the runs.
// Checkpoints and errors are left out.
type runsOnly struct{ RebuildRuns }

func (runsOnly) ProjectionCheckpoints(context.Context) ([]projections.CheckpointRow, error) {
	return nil, nil
}

func (runsOnly) LastErrors(context.Context) (map[string]projections.LastError, error) {
	return nil, nil
}

// noLog is a log without partitions: the state does not depend on the
// log, and the status's lag figures are not wanted.
type noLog struct{}

func (noLog) Bounds(context.Context, []string, time.Time, time.Time) (projections.Bounds, error) {
	return projections.Bounds{}, nil
}

func (noLog) Scan(context.Context, projections.ScanRequest, func([]projections.ScannedRecord) error) error {
	return errors.New("no log to scan")
}

func (noLog) PartitionOf(string, int) int32 { return 0 }

package events_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/roisystems/softprohub/handlers/events"
	"github.com/roisystems/softprohub/projections"
)

// memRuns is a run store in memory, newest run last.
type memRuns struct {
	runs []projections.RebuildRun
	err  error
}

func (m memRuns) Latest(_ context.Context, kind projections.RebuildKind, limit int) ([]projections.RebuildRun, error) {
	if m.err != nil {
		return nil, m.err
	}
	var out []projections.RebuildRun
	for i := len(m.runs) - 1; i >= 0 && len(out) < limit; i-- {
		if kind == "" || m.runs[i].Kind == kind {
			out = append(out, m.runs[i])
		}
	}
	return out, nil
}

func TestPausedWhileTheNewestRebuildHoldsTheSwap(t *testing.T) {
	t.Parallel()
	names := map[string]string{"softpro.transactions.v1": "transactions", "softpro.tasks.v1": "tasks", "softpro.poison.v1": "poison"}
	rebuild := func(s projections.RebuildState) projections.RebuildRun {
		return projections.RebuildRun{Kind: projections.KindRebuild, State: s}
	}
	asOf := func(s projections.RebuildState) projections.RebuildRun {
		return projections.RebuildRun{Kind: projections.KindAsOf, State: s}
	}
	tests := []struct {
		name string
		runs []projections.RebuildRun
		want []string
	}{
		{name: "no run", want: nil},
		{name: "building", runs: []projections.RebuildRun{rebuild(projections.StateBuilding)}, want: nil},
		{name: "sealing", runs: []projections.RebuildRun{rebuild(projections.StateSealing)}, want: nil},
		{name: "catching up", runs: []projections.RebuildRun{rebuild(projections.StateCatchingUp)}, want: nil},
		{name: "paused", runs: []projections.RebuildRun{rebuild(projections.StatePaused)},
			want: []string{"softpro.poison.v1", "softpro.tasks.v1", "softpro.transactions.v1"}},
		{name: "done after a pause", runs: []projections.RebuildRun{rebuild(projections.StateDone)}, want: nil},
		{name: "failed after a pause", runs: []projections.RebuildRun{rebuild(projections.StateFailed)}, want: nil},
		{name: "a newer rebuild decides", runs: []projections.RebuildRun{rebuild(projections.StatePaused), rebuild(projections.StateBuilding)}, want: nil},
		{name: "as-of builds never pause", runs: []projections.RebuildRun{asOf(projections.StatePaused)}, want: nil},
		{name: "an as-of build beside a paused rebuild", runs: []projections.RebuildRun{rebuild(projections.StatePaused), asOf(projections.StateBuilding)},
			want: []string{"softpro.poison.v1", "softpro.tasks.v1", "softpro.transactions.v1"}},
		{name: "many as-of builds after a paused rebuild", runs: append([]projections.RebuildRun{rebuild(projections.StatePaused)},
			slices.Repeat([]projections.RebuildRun{asOf(projections.StateDone)}, 8)...),
			want: []string{"softpro.poison.v1", "softpro.tasks.v1", "softpro.transactions.v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := events.NewPauses(memRuns{runs: tt.runs}, names).Paused(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for topic, p := range got {
				if !p {
					t.Errorf("%s listed as not paused", topic)
				}
			}
			if keys := slices.Sorted(maps.Keys(got)); fmt.Sprint(keys) != fmt.Sprint(tt.want) {
				t.Fatalf("paused %v, want %v", keys, tt.want)
			}
		})
	}
}

func TestPausedOnlyCoversTheNamedProjections(t *testing.T) {
	t.Parallel()
	runs := memRuns{runs: []projections.RebuildRun{{Kind: projections.KindRebuild, State: projections.StatePaused}}}
	got, err := events.NewPauses(runs, map[string]string{"softpro.tasks.v1": "tasks"}).Paused(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["softpro.tasks.v1"] || got["softpro.transactions.v1"] {
		t.Fatalf("paused %v, want only softpro.tasks.v1", got)
	}
}

func TestPausedReportsTheStoreFailing(t *testing.T) {
	t.Parallel()
	down := errors.New("database down")
	_, err := events.NewPauses(memRuns{err: down}, map[string]string{"softpro.tasks.v1": "tasks"}).Paused(context.Background())
	if !errors.Is(err, down) {
		t.Fatalf("err = %v, want the store's", err)
	}
}

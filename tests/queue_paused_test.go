package tests

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// heldTarget holds a rebuild at its swap, with the live projectors paused,
// until release is closed, and, when dropping is set, its clean-up after
// the swap until dropping is closed.
type heldTarget struct {
	*postgres.RebuildTarget
	release  chan struct{}
	dropping chan struct{}
}

func (h heldTarget) Drop(ctx context.Context, schema string) error {
	if h.dropping != nil {
		<-h.dropping
	}
	return h.RebuildTarget.Drop(ctx, schema)
}

func (h heldTarget) Pause(ctx context.Context) (projections.Swap, error) {
	s, err := h.RebuildTarget.Pause(ctx)
	if err != nil {
		return nil, err
	}
	return heldSwap{s, h.release}, nil
}

type heldSwap struct {
	projections.Swap
	release chan struct{}
}

func (h heldSwap) Commit(ctx context.Context, schema, retired string, names []string) error {
	<-h.release
	return h.Swap.Commit(ctx, schema, retired, names)
}

// pausedQueues is which queues the health answer and the stats answer
// report paused, as "health: …; stats: …".
func (e *Env) pausedQueues() string {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, "/api/webhooks/health", "", nil)
	if status != http.StatusOK {
		e.t.Fatalf("health: %d %s", status, raw)
	}
	var health struct{ Queues []httpapi.QueueStat }
	apiData(e.t, raw, &health)
	status, raw = e.do(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats?period=1h", e.analystToken(), nil)
	if status != http.StatusOK {
		e.t.Fatalf("stats: %d %s", status, raw)
	}
	var stats struct{ QueueStats []httpapi.QueueStat }
	apiData(e.t, raw, &stats)
	paused := func(qs []httpapi.QueueStat) []string {
		var out []string
		for _, q := range qs {
			if q.Paused {
				out = append(out, q.QueueName)
			}
		}
		slices.Sort(out)
		return out
	}
	return fmt.Sprintf("health: %v; stats: %v", paused(health.Queues), paused(stats.QueueStats))
}

// A rebuild run by another process (here: another Rebuilder over the same
// database) holds the live projectors at its swap: health and stats report
// every queue paused for exactly that long.
func TestQueuesPausedWhileARebuildHoldsTheLiveProjectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	if r := e.send(signedWebhook(id, secret, event("evt_before", domain.TaskCreated, time.Now(), `{"id":"tsk_1","title":"x"}`))); r.Status != 200 {
		t.Fatalf("send: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 1)
	none := "health: []; stats: []"
	if got := e.pausedQueues(); got != none {
		t.Fatalf("before the rebuild: %s", got)
	}

	ctx := t.Context()
	tools := e.recoveryTools()
	held := heldTarget{tools.Target, make(chan struct{}), make(chan struct{})}
	rb, err := projections.NewRebuilder(projections.RebuildConfig{LiveSchema: tools.Target.LiveSchema(), Names: app.ProjectionNames()},
		held, tools.Runs, tools.Log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := rb.Rebuild(ctx)
		done <- err
	}()
	released, dropped := false, false
	defer func() {
		if !released {
			close(held.release)
		}
		if !dropped {
			close(held.dropping)
		}
		if !released || !dropped {
			<-done
		}
	}()
	eventually(t, 60*time.Second, func() string {
		if got := queryString(t, db, `SELECT state FROM rebuild_runs ORDER BY id DESC LIMIT 1`); got != string(projections.StatePaused) {
			return "rebuild run state " + got
		}
		return ""
	})
	all := slices.Sorted(slices.Values(domain.AllTopics))
	if got, want := e.pausedQueues(), fmt.Sprintf("health: %v; stats: %v", all, all); got != want {
		t.Fatalf("during the swap: %s, want %s", got, want)
	}
	// The pause is real: an event sent now waits for the swap.
	if r := e.send(signedWebhook(id, secret, event("evt_during", domain.TaskCreated, time.Now(), `{"id":"tsk_2","title":"y"}`))); r.Status != 200 {
		t.Fatalf("send: %d %s", r.Status, r.Raw)
	}

	close(held.release)
	released = true
	// Once the swap has committed the projectors run again, and nothing
	// shows paused, though the rebuild still drops the replaced tables.
	eventually(t, 30*time.Second, func() string {
		if got := queryString(t, db, `SELECT state FROM rebuild_runs ORDER BY id DESC LIMIT 1`); got != string(projections.StateDone) {
			return "rebuild run state " + got
		}
		return ""
	})
	if got := e.pausedQueues(); got != none {
		t.Fatalf("after the swap, while the old tables are dropped: %s", got)
	}
	waitAudit(t, db, id, 2)
	close(held.dropping)
	dropped = true
	if err := <-done; err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if got := e.pausedQueues(); got != none {
		t.Fatalf("after the rebuild: %s", got)
	}
}

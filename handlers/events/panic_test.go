package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// panicStore panics in every topic projector's transaction that loads the
// event eventID; the poison consumer's are left alone.
type panicStore struct {
	projections.Store
	eventID string
}

func (s panicStore) InTx(ctx context.Context, fn func(context.Context, projections.Tx) error) error {
	return s.Store.InTx(ctx, func(ctx context.Context, tx projections.Tx) error {
		return fn(ctx, panicTx{Tx: tx, eventID: s.eventID})
	})
}

type panicTx struct {
	projections.Tx
	eventID string
}

func (t panicTx) Load(ctx context.Context, q projections.Query) (projections.Snapshot, error) {
	// Applying loads entities; noting a failed attempt does not.
	if q.Projection != events.PoisonProjection && len(q.Entities) > 0 {
		for _, k := range q.Events {
			if k.EventID == t.eventID {
				panic("projecting " + k.EventID)
			}
		}
	}
	return t.Tx.Load(ctx, q)
}

// A record whose projection panics does not take the process down: it is
// retried, poisoned and marked FAILED like any record that fails for
// reasons of its own, and the records that shared its transactions are
// applied.
func TestPanicWhileProjectingPoisonsOnlyItsRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Records on every partition before the router starts, so the one that
	// panics shares transactions with others.
	e.appendUpdates("k", 0, 24, 6, 6)
	e.append(0, "int_0", "boom", domain.TransactionUpdated, t0, `{"id":"x0","status":"boom"}`)
	e.appendUpdates("k", 1, 24, 6, 6)
	store := panicStore{Store: postgres.NewProjectionStore(e.pool), eventID: "boom"}
	reg := prometheus.NewRegistry()
	e.startWith(store, reg)

	e.waitFor(60*time.Second, "the panicking record FAILED", func() bool {
		return e.count("SELECT count(*) FROM webhook_events WHERE event_id = 'boom' AND status = 'FAILED' AND error LIKE '%panic%'") == 1
	})
	e.waitFor(30*time.Second, "the other records COMPLETED", func() bool {
		return e.count("SELECT count(*) FROM webhook_events WHERE event_id <> 'boom' AND status = 'COMPLETED'") == 48
	})
	if got, _ := sample(t, reg, "softprohub_projection_poisoned_total", map[string]string{"topic": e.topics[0]}); got != 1 {
		t.Errorf("poisoned_total = %v, want 1", got)
	}
}

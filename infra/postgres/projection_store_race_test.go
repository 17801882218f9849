package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// heldStore is a ProjectionStore whose transactions, after their first
// Load, call loaded: a test uses it to make two projectors read before
// either writes.
type heldStore struct {
	*ProjectionStore
	loaded func()
}

func (s heldStore) InTx(ctx context.Context, fn func(ctx context.Context, tx projections.Tx) error) error {
	return s.ProjectionStore.InTx(ctx, func(ctx context.Context, tx projections.Tx) error {
		return fn(ctx, heldTx{Tx: tx, loaded: s.loaded})
	})
}

type heldTx struct {
	projections.Tx
	loaded func()
}

func (t heldTx) Load(ctx context.Context, q projections.Query) (projections.Snapshot, error) {
	snap, err := t.Tx.Load(ctx, q)
	if err == nil {
		t.loaded()
	}
	return snap, err
}

// Two projectors (a webhook topic's and the sync topic's) that both find
// an entity missing and create it at once: the one that writes second must
// not overwrite the first one's row with a state folded from nothing (its
// fields, created-at and status history lost). It fails with a lost race,
// is applied again as the live path retries, and the row is the fold of
// both events.
func TestProjectorsCreatingOneEntityAtOnceFoldBoth(t *testing.T) {
	t.Parallel()
	_, pool := newProjector(t)
	store := NewProjectionStore(pool)
	var once [2]sync.Once
	arrived := make(chan struct{}, 2)
	release := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	hold := func(i int) func() {
		return func() {
			once[i].Do(func() {
				arrived <- struct{}{}
				<-release[i]
			})
		}
	}
	webhooks := projections.NewProjector("transactions", heldStore{store, hold(0)}, nil)
	syncs := projections.NewProjector("sync", heldStore{store, hold(1)}, nil)
	created := rec(domain.TopicTransactions, 0, 0, "int_a", "evt_created", domain.TransactionCreated, tBase,
		`{"id":"txn_1","file_number":"F-1","status":"open"}`)
	synced := rec(domain.TopicSync, 0, 0, "int_a", "evt_synced", domain.TransactionSynced, tBase.Add(4*time.Second),
		`{"id":"txn_1","status":"in_progress","property_address":"1 Main St"}`)

	errs := make([]error, 2)
	var wg [2]sync.WaitGroup
	for i, run := range []func() error{
		func() error { _, err := webhooks.Apply(testContext(t), created); return err },
		func() error { _, err := syncs.Apply(testContext(t), synced); return err },
	} {
		wg[i].Add(1)
		go func() {
			defer wg[i].Done()
			errs[i] = run()
		}()
	}
	for range 2 {
		<-arrived
	}
	// Both found the entity missing. The older event's transaction commits
	// first; the newer one's, which the upsert let overwrite it, second.
	close(release[0])
	wg[0].Wait()
	close(release[1])
	wg[1].Wait()
	// The live path retries a lost race; so does this test.
	retries := 0
	for i, p := range []*projections.Projector{webhooks, syncs} {
		r := []projections.Record{created, synced}[i]
		if errs[i] == nil {
			continue
		}
		if !errors.Is(errs[i], projections.ErrCheckpointMoved) {
			t.Fatalf("apply %s: %v", r.Envelope.EventID, errs[i])
		}
		retries++
		apply(t, p, r)
	}
	if retries > 1 {
		t.Fatalf("both projectors lost the race")
	}

	got := queryOne[string](t, pool, `SELECT concat_ws('|', file_number, status, property_address, softpro_created_at = $1, softpro_updated_at = $2,
		payload ? 'file_number', payload ? 'property_address') FROM transactions WHERE integration_id = 'int_a' AND id = 'txn_1'`,
		tBase, tBase.Add(4*time.Second))
	if want := "F-1|in_progress|1 Main St|t|t|t|t"; got != want {
		t.Errorf("transaction row %s, want %s", got, want)
	}
	if got := queryOne[string](t, pool, `SELECT coalesce(string_agg(from_status || '>' || to_status, ','), '') FROM transaction_status_changes
		WHERE integration_id = 'int_a' AND transaction_id = 'txn_1'`); got != "open>in_progress" {
		t.Errorf("status changes %q, want open>in_progress", got)
	}
	if got := queryOne[string](t, pool, `SELECT string_agg(event_id || ' ' || status, ',' ORDER BY event_id) FROM webhook_events`); got != "evt_created COMPLETED,evt_synced COMPLETED" {
		t.Errorf("audit %s", got)
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// Each audit row keeps its event's first record's log timestamp, through
// the set-based insert, the COPY of large batches and the upsert of a later
// copy of the event, and Load reports it as the row's last change.
func TestAuditKeepsTheFirstRecordsAppendTime(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	ctx := testContext(t)
	stamped := func(r projections.Record, at time.Time) projections.Record {
		r.Timestamp = at
		return r
	}
	t1 := tBase.Add(time.Second + 123*time.Millisecond)
	first := stamped(rec("t", 0, 0, "int_a", "evt_1", domain.TaskCreated, tBase, `{"id":"k1","title":"a"}`), t1)
	if err := p.RecordAttempt(ctx, first, errors.New("db hiccup")); err != nil {
		t.Fatal(err)
	}
	// A manual retry's copy, appended a minute later, completes it.
	retried := stamped(rec("t", 0, 5, "int_a", "evt_1", domain.TaskCreated, tBase, `{"id":"k1","title":"a"}`), t1.Add(time.Minute))
	retried.Attempt = 2
	apply(t, p, retried)
	if got := queryOne[time.Time](t, pool, "SELECT appended_at FROM webhook_events WHERE event_id = 'evt_1'"); !got.Equal(t1) {
		t.Errorf("appended_at = %s, want the first record's %s", got, t1)
	}
	k1 := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTask, ID: "k1"}
	var snap projections.Snapshot
	err := NewProjectionStore(pool).InTx(ctx, func(ctx context.Context, tx projections.Tx) error {
		var err error
		snap, err = tx.Load(ctx, projections.Query{Projection: "test", Entities: []domain.EntityKey{k1}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if last := snap.LastChanges[k1]; last.Topic != "t" || !last.AppendedAt.Equal(t1) {
		t.Errorf("last change = %+v, want topic t appended at %s", last, t1)
	}

	// A batch large enough to load its new audit rows with COPY.
	n := copyMin + 10
	big := make([]projections.Record, n)
	for i := range big {
		big[i] = stamped(rec("t", 1, int64(i), "int_a", fmt.Sprintf("big_%d", i), domain.TaskCreated, tBase,
			fmt.Sprintf(`{"id":"b%d","title":"x"}`, i)), tBase.Add(time.Duration(i)*time.Millisecond))
	}
	apply(t, p, big...)
	rows, err := pool.Query(ctx, "SELECT event_id, appended_at FROM webhook_events WHERE event_id LIKE 'big_%'")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rows.Next() {
		var id string
		var at *time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(id, "big_%d", &i)
		if want := tBase.Add(time.Duration(i) * time.Millisecond); at == nil || !at.Equal(want) {
			t.Errorf("%s appended_at = %v, want %s", id, at, want)
		}
		seen++
	}
	if rows.Err() != nil || seen != n {
		t.Fatalf("read %d rows (%v), want %d", seen, rows.Err(), n)
	}
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

var tBase = time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)

// newProjector opens a fresh migrated schema and a projector over it.
func newProjector(t *testing.T) (*projections.Projector, *pgxpool.Pool) {
	t.Helper()
	pool, _ := openTestSchema(t, nil)
	if err := Migrate(testContext(t), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return projections.NewProjector("test", NewProjectionStore(pool), nil), pool
}

func rec(topic string, partition int32, offset int64, integration, eventID string, typ domain.EventType, at time.Time, data string) projections.Record {
	return projections.Record{
		Partition: projections.Partition{Topic: topic, Partition: partition},
		Offset:    offset,
		Envelope: domain.Envelope{
			Schema: domain.SchemaV1, EventID: eventID, IntegrationID: integration, Type: typ,
			OccurredAt: at, ReceivedAt: time.Now().Add(-20 * time.Millisecond), Source: domain.SourceWebhook,
			Payload: json.RawMessage(fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":%q,"data":%s}`, eventID, typ, at.Format(time.RFC3339), data)),
		},
		Attempt: 1,
	}
}

func apply(t *testing.T, p *projections.Projector, recs ...projections.Record) []projections.Outcome {
	t.Helper()
	out, err := p.Apply(testContext(t), recs...)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return out
}

func queryOne[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(testContext(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

type metricsRow struct {
	received, completed, failed, skipped int64
	buckets                              []int64
}

func metricsOf(t *testing.T, pool *pgxpool.Pool, integration string, typ domain.EventType) metricsRow {
	t.Helper()
	var m metricsRow
	err := pool.QueryRow(testContext(t), `SELECT coalesce(sum(received),0), coalesce(sum(completed),0), coalesce(sum(failed),0), coalesce(sum(skipped),0)
		FROM integration_metrics_hourly WHERE integration_id = $1 AND event_type = $2`, integration, string(typ)).
		Scan(&m.received, &m.completed, &m.failed, &m.skipped)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestProjectorRedeliveryChangesNothing(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	r := rec("tx", 0, 0, "int_a", "evt_1", domain.TransactionCreated, tBase, `{"id":"txn_1","status":"open","file_number":"F-1"}`)
	r2 := rec("tx", 0, 1, "int_a", "evt_2", domain.TransactionStatusChanged, tBase.Add(time.Minute), `{"id":"txn_1","status":"closed"}`)
	if got := apply(t, p, r); got[0] != projections.OutcomeApplied {
		t.Fatalf("first apply = %v", got)
	}
	apply(t, p, r2)
	for _, again := range []projections.Record{r, r2} {
		if got := apply(t, p, again); got[0] != projections.OutcomeRedelivered {
			t.Fatalf("redelivery of offset %d = %v, want redelivered", again.Offset, got)
		}
	}
	if n := queryOne[int64](t, pool, "SELECT count(*) FROM webhook_events WHERE integration_id = 'int_a'"); n != 2 {
		t.Errorf("audit rows = %d, want 2", n)
	}
	if n := queryOne[int64](t, pool, "SELECT count(*) FROM transaction_status_changes WHERE integration_id = 'int_a'"); n != 1 {
		t.Errorf("status changes = %d, want 1", n)
	}
	if m := metricsOf(t, pool, "int_a", domain.TransactionCreated); m.received != 1 || m.completed != 1 {
		t.Errorf("metrics = %+v, want received 1 completed 1", m)
	}
	if next := queryOne[int64](t, pool, "SELECT next_offset FROM projection_checkpoints WHERE projection='test' AND topic='tx' AND partition=0"); next != 2 {
		t.Errorf("checkpoint = %d, want 2", next)
	}
	if s := queryOne[string](t, pool, "SELECT status FROM transactions WHERE integration_id='int_a' AND id='txn_1'"); s != "closed" {
		t.Errorf("status = %q, want closed", s)
	}
}

func TestProjectorNewestWins(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	newer := rec("tx", 0, 0, "int_a", "evt_new", domain.TransactionUpdated, tBase.Add(time.Hour), `{"id":"txn_1","status":"in_progress"}`)
	older := rec("sync", 3, 0, "int_a", "evt_old", domain.TransactionSynced, tBase, `{"id":"txn_1","status":"open","file_number":"F-1"}`)
	apply(t, p, newer)
	if got := apply(t, p, older); got[0] != projections.OutcomeStale {
		t.Fatalf("older apply = %v, want stale", got)
	}
	var status string
	var updated time.Time
	if err := pool.QueryRow(testContext(t), "SELECT status, softpro_updated_at FROM transactions WHERE integration_id='int_a' AND id='txn_1'").Scan(&status, &updated); err != nil {
		t.Fatal(err)
	}
	if status != "in_progress" || !updated.Equal(tBase.Add(time.Hour)) {
		t.Errorf("row = %q at %v, want in_progress at %v", status, updated, tBase.Add(time.Hour))
	}
	var st string
	var applied bool
	if err := pool.QueryRow(testContext(t), "SELECT status, applied FROM webhook_events WHERE integration_id='int_a' AND event_id='evt_old'").Scan(&st, &applied); err != nil {
		t.Fatalf("older event not in audit: %v", err)
	}
	if st != "COMPLETED" || applied {
		t.Errorf("older audit = %s applied %v, want COMPLETED applied false", st, applied)
	}
}

func TestProjectorDeleteUnknownAndIntegrationsIsolated(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	apply(t, p,
		rec("c", 0, 0, "int_a", "evt_1", domain.ContactCreated, tBase, `{"id":"c1","email":"a@x"}`),
		rec("c", 0, 1, "int_b", "evt_1", domain.ContactCreated, tBase, `{"id":"c1","email":"b@x"}`),
		rec("c", 0, 2, "int_a", "evt_2", domain.ContactDeleted, tBase.Add(time.Minute), `{"id":"c1"}`),
		rec("o", 0, 0, "int_a", "evt_3", "invoice.paid", tBase, `{"id":"inv1"}`),
	)
	rows, err := pool.Query(testContext(t), "SELECT integration_id, email, deleted FROM contacts WHERE id='c1' ORDER BY integration_id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var in, email string
		var del bool
		if err := rows.Scan(&in, &email, &del); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%s:%v", in, email, del))
	}
	if want := "[int_a:a@x:true int_b:b@x:false]"; fmt.Sprint(got) != want {
		t.Errorf("contacts = %v, want %s", got, want)
	}
	if s := queryOne[string](t, pool, "SELECT status FROM webhook_events WHERE integration_id='int_a' AND event_id='evt_3'"); s != "SKIPPED" {
		t.Errorf("unknown type status = %s, want SKIPPED", s)
	}
	if n := queryOne[int64](t, pool, "SELECT count(*) FROM webhook_events WHERE event_id='evt_1'"); n != 2 {
		t.Errorf("audit rows for evt_1 = %d, want one per integration", n)
	}
	if m := metricsOf(t, pool, "int_a", "invoice.paid"); m.received != 1 || m.skipped != 1 || m.completed != 0 {
		t.Errorf("unknown type metrics = %+v", m)
	}
}

func TestProjectorFailThenRetry(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	poison := projections.NewProjector("poison", NewProjectionStore(pool), nil)
	bad := rec("docs", 1, 7, "int_a", "evt_bad", domain.DocumentUploaded, tBase, `{"name":"no id"}`)
	_, err := p.Apply(testContext(t), bad)
	if !projections.IsPermanent(err) {
		t.Fatalf("apply unprojectable = %v, want permanent", err)
	}
	f := projections.Failure{
		Record:       projections.Record{Partition: projections.Partition{Topic: "poison", Partition: 0}, Offset: 0, Envelope: bad.Envelope},
		Origin:       bad.Partition,
		OriginOffset: bad.Offset,
		Reason:       err.Error(),
		Attempts:     1,
	}
	for range 2 { // the second is a redelivery
		if err := poison.Fail(testContext(t), f); err != nil {
			t.Fatalf("fail: %v", err)
		}
	}
	var status, errText string
	var off int64
	if err := pool.QueryRow(testContext(t), `SELECT status, error, "offset" FROM webhook_events WHERE event_id='evt_bad'`).Scan(&status, &errText, &off); err != nil {
		t.Fatal(err)
	}
	if status != "FAILED" || errText == "" || off != 7 {
		t.Errorf("audit = %s %q @%d, want FAILED with error @7", status, errText, off)
	}
	if m := metricsOf(t, pool, "int_a", domain.DocumentUploaded); m.received != 1 || m.failed != 1 {
		t.Errorf("metrics after fail = %+v, want received 1 failed 1", m)
	}
	// A manual retry appends a fixed event under the same id.
	fixed := rec("docs", 1, 9, "int_a", "evt_bad", domain.DocumentUploaded, tBase, `{"id":"d1","name":"fixed"}`)
	apply(t, p, fixed)
	if m := metricsOf(t, pool, "int_a", domain.DocumentUploaded); m.received != 1 || m.failed != 0 || m.completed != 1 {
		t.Errorf("metrics after retry = %+v, want received 1 failed 0 completed 1", m)
	}
}

func TestProjectorBatchAndRecordAttempt(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	first := rec("t", 0, 0, "int_a", "evt_1", domain.TaskCreated, tBase, `{"id":"k1","title":"Order title"}`)
	if err := p.RecordAttempt(testContext(t), first, errors.New("db hiccup")); err != nil {
		t.Fatal(err)
	}
	if s := queryOne[string](t, pool, "SELECT status FROM webhook_events WHERE event_id='evt_1'"); s != "PROCESSING" {
		t.Errorf("after failed attempt status = %s, want PROCESSING", s)
	}
	first.Attempt = 2
	out := apply(t, p, first,
		rec("t", 0, 1, "int_a", "evt_2", domain.TaskCompleted, tBase.Add(time.Minute), `{"id":"k1"}`),
		rec("t", 1, 0, "int_a", "evt_3", domain.TaskCreated, tBase, `{"id":"k2","title":"Other"}`),
	)
	if fmt.Sprint(out) != "[applied applied applied]" {
		t.Errorf("outcomes = %v", out)
	}
	var status string
	var retries int
	if err := pool.QueryRow(testContext(t), "SELECT w.status, w.retry_count FROM webhook_events w WHERE event_id='evt_1'").Scan(&status, &retries); err != nil {
		t.Fatal(err)
	}
	if status != "COMPLETED" || retries != 1 {
		t.Errorf("audit = %s retries %d, want COMPLETED 1", status, retries)
	}
	if s := queryOne[string](t, pool, "SELECT status FROM tasks WHERE id='k1'"); s != "completed" {
		t.Errorf("task status = %s", s)
	}
	if m := metricsOf(t, pool, "int_a", domain.TaskCreated); m.received != 2 || m.completed != 2 {
		t.Errorf("metrics = %+v, want received 2 completed 2", m)
	}
	if n := queryOne[int64](t, pool, "SELECT sum(next_offset) FROM projection_checkpoints WHERE projection='test'"); n != 3 {
		t.Errorf("checkpoints sum = %d, want 2+1", n)
	}
}

func TestProjectionStoreClassifiesOutage(t *testing.T) {
	t.Parallel()
	_, pool := newProjector(t)
	// A server that does not answer must give a transient error, never a
	// permanent one: the event is fine, the database is not.
	cfg := pool.Config().Copy()
	cfg.ConnConfig.Port = 1
	dead, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	p := projections.NewProjector("test", NewProjectionStore(dead), nil)
	_, err = p.Apply(testContext(t), rec("t", 0, 0, "int_a", "evt_1", domain.TaskCreated, tBase, `{"id":"k1"}`))
	if !projections.IsTransient(err) || projections.IsPermanent(err) {
		t.Fatalf("apply against dead server = %v, want transient", err)
	}
}

// TestProjectionStoreCommitsAllOrNothing: the writes travel with COMMIT in
// one pipeline, so a failing write must leave nothing behind, not even the
// statements queued before it, and the connection must come back clean.
func TestProjectionStoreCommitsAllOrNothing(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	store := NewProjectionStore(pool)
	part := projections.Partition{Topic: "t", Partition: 0}
	good := projections.AuditRow{IntegrationID: "int_a", EventID: "evt_ok", EventType: domain.TaskCreated,
		Payload: json.RawMessage(`{}`), Status: projections.StatusCompleted, ReceivedAt: tBase, Topic: "t"}
	bad := good
	bad.EventID, bad.Payload = "evt_bad", json.RawMessage(`{not json`)
	for range 3 {
		err := store.InTx(testContext(t), func(ctx context.Context, tx projections.Tx) error {
			if _, err := tx.Load(ctx, projections.Query{Projection: "test", Partitions: []projections.Partition{part}}); err != nil {
				return err
			}
			return tx.Save(ctx, projections.Writes{
				Checkpoints: []projections.Checkpoint{{Projection: "test", Partition: part, Prev: -1, Next: 5}},
				Audit:       []projections.AuditRow{good, bad},
			})
		})
		if err == nil {
			t.Fatal("a transaction with an invalid payload committed")
		}
	}
	if n := queryOne[int64](t, pool, "SELECT count(*) FROM projection_checkpoints WHERE projection='test'"); n != 0 {
		t.Errorf("checkpoints = %d after failed transactions, want 0", n)
	}
	if n := queryOne[int64](t, pool, "SELECT count(*) FROM webhook_events"); n != 0 {
		t.Errorf("audit rows = %d after failed transactions, want 0", n)
	}
	// Every pooled connection is usable: no transaction was left open.
	for i := range 8 {
		apply(t, p, rec("t", 0, int64(i), "int_a", fmt.Sprintf("evt_%d", i), domain.TaskCreated, tBase, `{"id":"k1"}`))
	}
	if n := queryOne[int64](t, pool, "SELECT next_offset FROM projection_checkpoints WHERE projection='test'"); n != 8 {
		t.Errorf("checkpoint = %d, want 8", n)
	}
}

// TestProjectionStoreCheckpointRaces: a checkpoint advances only from what
// its own transaction read; of two writers that both found a partition new,
// one wins and the other gets ErrCheckpointMoved.
func TestProjectionStoreCheckpointRaces(t *testing.T) {
	t.Parallel()
	_, pool := newProjector(t)
	store := NewProjectionStore(pool)
	part := projections.Partition{Topic: "t", Partition: 3}
	cp := projections.Checkpoint{Projection: "test", Partition: part, Prev: -1, Next: 1}
	err := store.InTx(testContext(t), func(ctx context.Context, tx projections.Tx) error {
		return tx.Save(ctx, projections.Writes{Checkpoints: []projections.Checkpoint{cp}})
	})
	if !errors.Is(err, projections.ErrCheckpointMoved) {
		t.Fatalf("advancing a checkpoint the transaction never read = %v, want ErrCheckpointMoved", err)
	}
	ok, moved := race(t, store, func(ctx context.Context, tx projections.Tx, _ int, loaded func()) error {
		if _, err := tx.Load(ctx, projections.Query{Projection: "test", Partitions: []projections.Partition{part}}); err != nil {
			return err
		}
		loaded()
		return tx.Save(ctx, projections.Writes{Checkpoints: []projections.Checkpoint{cp}})
	})
	if ok != 1 || moved != 1 {
		t.Fatalf("racing inserts: %d committed, %d moved; want 1 and 1", ok, moved)
	}
}

// race runs fn in two transactions of store at once, each calling loaded
// once it has read, and neither going on before both have: it returns how
// many committed and how many lost a race (ErrCheckpointMoved).
func race(t *testing.T, store *ProjectionStore, fn func(ctx context.Context, tx projections.Tx, i int, loaded func()) error) (ok, moved int) {
	t.Helper()
	loaded := make(chan struct{}, 2)
	both := make(chan struct{})
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			errs <- store.InTx(testContext(t), func(ctx context.Context, tx projections.Tx) error {
				return fn(ctx, tx, i, func() {
					loaded <- struct{}{}
					<-both
				})
			})
		}()
	}
	for n := 0; n < 2; {
		select {
		case <-loaded:
			n++
		case err := <-errs:
			close(both)
			t.Fatalf("a transaction ended before both had read: %v", err)
		}
	}
	close(both)
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, projections.ErrCheckpointMoved):
			moved++
		default:
			t.Fatalf("racing transactions: %v", err)
		}
	}
	return ok, moved
}

// TestProjectionStoreAsyncCommit: only the store made for the live
// projectors commits asynchronously.
func TestProjectionStoreAsyncCommit(t *testing.T) {
	t.Parallel()
	_, pool := newProjector(t)
	for _, tt := range []struct {
		store *ProjectionStore
		want  string
	}{{NewProjectionStore(pool), "on"}, {NewProjectionStore(pool).WithAsyncCommit(), "off"}} {
		err := tt.store.InTx(testContext(t), func(ctx context.Context, tx projections.Tx) error {
			if _, err := tx.Load(ctx, projections.Query{Projection: "test"}); err != nil {
				return err
			}
			var got string
			if err := tx.(*projectionTx).conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
				return err
			}
			if got != tt.want {
				t.Errorf("synchronous_commit = %s, want %s", got, tt.want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var after string
	if err := pool.QueryRow(testContext(t), "SHOW synchronous_commit").Scan(&after); err != nil || after != "on" {
		t.Errorf("after the transaction synchronous_commit = %s (%v), want on", after, err)
	}
}

// TestProjectorLargeBatchesFindStoredRows: batches of rebuild size look
// keys up with the join form; stored audit rows and entities are found.
func TestProjectorLargeBatchesFindStoredRows(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	n := manyKeys + 88
	batch := func(from int64, version int) []projections.Record {
		recs := make([]projections.Record, n)
		for i := range n {
			recs[i] = rec("t", 0, from+int64(i), "int_a", fmt.Sprintf("evt_%d", i), domain.TaskCreated, tBase.Add(time.Duration(version)*time.Hour),
				fmt.Sprintf(`{"id":"k%d","title":"v%d"}`, i, version))
		}
		return recs
	}
	for _, o := range apply(t, p, batch(0, 1)...) {
		if o != projections.OutcomeApplied {
			t.Fatalf("first batch: %v", o)
		}
	}
	// The same events appended again: every one is found and changes nothing.
	for _, o := range apply(t, p, batch(int64(n), 2)...) {
		if o != projections.OutcomeDuplicate {
			t.Fatalf("second copies: %v", o)
		}
	}
	// New events for the same tasks: every entity is found and updated.
	third := batch(int64(2*n), 3)
	for i := range third {
		third[i].Envelope.EventID = fmt.Sprintf("evt_new_%d", i)
	}
	for _, o := range apply(t, p, third...) {
		if o != projections.OutcomeApplied {
			t.Fatalf("third batch: %v", o)
		}
	}
	if got := queryOne[int64](t, pool, "SELECT count(*) FROM tasks WHERE title = 'v3'"); got != int64(n) {
		t.Errorf("tasks at v3 = %d, want %d", got, n)
	}
	if got := queryOne[int64](t, pool, "SELECT count(*) FROM webhook_events"); got != int64(2*n) {
		t.Errorf("audit rows = %d, want %d", got, 2*n)
	}
}

// Batches with hundreds of new entities of a kind load them with COPY, and
// their new audit rows too; the rows must be the ones the upserts of small
// batches write, column for column (but processing times), for every kind,
// including entities created and then changed in the same batch.
func TestProjectorLargeBatchesLoadNewEntitiesLikeSmallOnes(t *testing.T) {
	t.Parallel()
	var recs []projections.Record
	add := func(typ domain.EventType, i int, hour int, data string) {
		recs = append(recs, rec("t", 0, int64(len(recs)), "int_a", fmt.Sprintf("evt_%d", len(recs)), typ, tBase.Add(time.Duration(hour)*time.Hour+time.Duration(i)*time.Second), data))
	}
	n := copyMin + 20
	for i := range n {
		add(domain.TransactionCreated, i, 0, fmt.Sprintf(`{"id":"txn_%d","file_number":"F-%d","status":"open","property":{"address":"%d Main St"},"closing_date":"2024-03-01"}`, i, i, i))
		add(domain.ContactCreated, i, 0, fmt.Sprintf(`{"id":"con_%d","transaction_id":"txn_%d","first_name":"A","last_name":"B%d","email":"a%d@example.com","phone":"+1","role":"buyer"}`, i, i, i, i))
		add(domain.DocumentUploaded, i, 0, fmt.Sprintf(`{"id":"doc_%d","transaction_id":"txn_%d","name":"d%d.pdf","document_type":"deed","url":"https://x/%d"}`, i, i, i, i))
		add(domain.TaskCreated, i, 0, fmt.Sprintf(`{"id":"tsk_%d","transaction_id":"txn_%d","title":"T","status":"open","assigned_to":"ann","due_date":"2024-02-01"}`, i, i))
	}
	// Entities whose data the big batch takes from their event's stored
	// payload: bare records (no "data"), a payload with "data" twice (the
	// last counts), awkward JSON, entities first seen in a delete or a
	// status change.
	raw := func(typ domain.EventType, hour int, payload string) {
		add(typ, len(recs), hour, "{}")
		recs[len(recs)-1].Envelope.Payload = json.RawMessage(payload)
	}
	for i := range 40 {
		raw(domain.ContactSynced, 0, fmt.Sprintf(`{"id":"con_bare_%d","first_name":"Bare","last_name":"L%d","email":"b%d@example.com"}`, i, i, i))
		raw(domain.DocumentSynced, 0, fmt.Sprintf(`{"id":"evt_x","data":{"id":"doc_old_%d","name":"old"},"data":{"id":"doc_twice_%d","name":"new.pdf","size":1.50e2}}`, i, i))
		raw(domain.TaskCreated, 0, fmt.Sprintf(`{"data":{"id":"tsk_odd_%d","title":"J\u00f6rg \"JJ\" <x> & \ud83d\ude00","tags":[1,{"b":null},-0.0,true],"due_date":"2024-02-01","n":12345678901234567890}}`, i))
		add(domain.ContactDeleted, i, 0, fmt.Sprintf(`{"id":"con_gone_%d"}`, i))
		add(domain.TransactionStatusChanged, i, 0, fmt.Sprintf(`{"id":"txn_st_%d","new_status":"closed","old_status":"open"}`, i))
	}
	for i := 0; i < n; i += 7 { // changed within the batch
		add(domain.TransactionStatusChanged, i, 1, fmt.Sprintf(`{"id":"txn_%d","status":"closing"}`, i))
		add(domain.ClosingCompleted, i, 2, fmt.Sprintf(`{"id":"cls_%d","transaction_id":"txn_%d"}`, i, i))
		add(domain.ContactDeleted, i, 1, fmt.Sprintf(`{"id":"con_%d"}`, i))
		add(domain.TaskCompleted, i, 1, fmt.Sprintf(`{"id":"tsk_%d"}`, i))
		add(domain.DocumentUpdated, i, 1, fmt.Sprintf(`{"id":"doc_%d","name":"v2.pdf"}`, i))
	}
	big, bigPool := newProjector(t)
	apply(t, big, recs...)
	small, smallPool := newProjector(t)
	for lo := 0; lo < len(recs); lo += 50 {
		apply(t, small, recs[lo:min(lo+50, len(recs))]...)
	}
	for _, q := range []string{
		`SELECT id, file_number, status, property_address, closing_date, closed_at, softpro_created_at, softpro_updated_at, last_event_id, deleted, deleted_at, payload FROM transactions ORDER BY id`,
		`SELECT id, transaction_id, first_name, last_name, email, phone, role, softpro_created_at, softpro_updated_at, last_event_id, deleted, deleted_at, payload FROM contacts ORDER BY id`,
		`SELECT id, transaction_id, name, document_type, url, softpro_created_at, softpro_updated_at, last_event_id, deleted, deleted_at, payload FROM documents ORDER BY id`,
		`SELECT id, transaction_id, title, status, assigned_to, due_date, completed_at, softpro_created_at, softpro_updated_at, last_event_id, deleted, deleted_at, payload FROM tasks ORDER BY id`,
		`SELECT transaction_id, from_status, to_status, changed_at, event_id FROM transaction_status_changes ORDER BY event_id`,
		`SELECT integration_id, event_id, event_type, payload, headers, status, received_at, failed_at, retry_count, last_retry_at,
 error, occurred_at, applied, source, topic, "partition", "offset", processed_at IS NOT NULL, processing_time_ms IS NOT NULL
 FROM webhook_events ORDER BY event_id`,
	} {
		dump := func(pool *pgxpool.Pool) string {
			rows, err := pool.Query(testContext(t), `SELECT coalesce(string_agg(r::text, E'\n'), '') FROM (`+q+`) r`)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			s, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		got, want := dump(bigPool), dump(smallPool)
		if got == "" || got != want {
			t.Fatalf("%s\none batch:\n%.2000s\nbatches of 50:\n%.2000s", q, got, want)
		}
	}
	// Audit ids made for COPY are time-ordered like the table's default:
	// version 7, in the order the rows were loaded, holding about now.
	if got := queryOne[int64](t, bigPool, `SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY "offset") AS prev FROM webhook_events) r
WHERE substr(id::text, 15, 1) <> '7' OR substr(id::text, 20, 1) NOT IN ('8', '9', 'a', 'b') OR id <= prev
 OR abs(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint - extract(epoch FROM now()) * 1000) > 600000`); got != 0 {
		t.Errorf("%d audit ids are not time-ordered version 7 ids", got)
	}
	if got := queryOne[int64](t, bigPool, "SELECT count(*) FROM tasks WHERE deleted = false AND status = 'completed'"); got != int64((n+6)/7) {
		t.Errorf("completed tasks = %d, want %d", got, (n+6)/7)
	}
}

// An event projected more than 24.8 days after its receipt (a long outage,
// a replay or rebuild of an old log) is projected with its processing time
// capped to what the integer column holds, by the pipelined upsert and by
// COPY alike, instead of failing its transaction for good.
func TestProjectorCapsTheProcessingTimeOfOldEvents(t *testing.T) {
	t.Parallel()
	old := time.Now().Add(-60 * 24 * time.Hour)
	recs := make([]projections.Record, copyMin+1)
	for i := range recs {
		recs[i] = rec("t", 0, int64(i), "int_a", fmt.Sprintf("evt_old_%d", i), domain.ContactCreated, tBase, fmt.Sprintf(`{"id":"con_%d"}`, i))
		recs[i].Envelope.ReceivedAt = old
	}
	for name, batches := range map[string][][]projections.Record{"upsert": {recs[:1]}, "copy": {recs}} {
		p, pool := newProjector(t)
		for _, b := range batches {
			apply(t, p, b...)
		}
		if got := queryOne[int64](t, pool, "SELECT count(*) FROM webhook_events WHERE processing_time_ms = $1", projections.MaxProcessingMs); got != int64(len(batches[0])) {
			t.Errorf("%s: %d audit rows with the capped processing time, want %d", name, got, len(batches[0]))
		}
		if got := queryOne[int64](t, pool, "SELECT count(*) FROM contacts"); got != int64(len(batches[0])) {
			t.Errorf("%s: %d contacts, want %d", name, got, len(batches[0]))
		}
	}
}

// Two writers that both found no audit row for an event (the poison
// consumer marking it FAILED and a gap fill projecting it, say) must not
// both insert it: the second fails its transaction as a lost race, to be
// planned again, and the event is counted as received once.
func TestProjectionStoreNewAuditRowsNeverOverwrite(t *testing.T) {
	t.Parallel()
	_, pool := newProjector(t)
	store := NewProjectionStore(pool)
	key := projections.EventKey{IntegrationID: "int_a", EventID: "evt_race"}
	hour := tBase.Truncate(time.Hour)
	write := func(status projections.Status) projections.Writes {
		r := rec("t", 0, 0, key.IntegrationID, key.EventID, domain.ContactCreated, tBase, `{"id":"con_1"}`)
		return projections.Writes{
			Audit:   []projections.AuditRow{{IntegrationID: key.IntegrationID, EventID: key.EventID, EventType: domain.ContactCreated, Payload: r.Envelope.Payload, Status: status, ReceivedAt: tBase, Source: domain.SourceWebhook, Topic: "t", New: true}},
			Metrics: []projections.MetricsDelta{{IntegrationID: key.IntegrationID, EventType: domain.ContactCreated, Hour: hour, Received: 1}},
		}
	}
	statuses := []projections.Status{projections.StatusFailed, projections.StatusCompleted}
	ok, moved := race(t, store, func(ctx context.Context, tx projections.Tx, i int, loaded func()) error {
		snap, err := tx.Load(ctx, projections.Query{Projection: "test", Events: []projections.EventKey{key}})
		if err != nil {
			return err
		}
		if len(snap.Audit) != 0 {
			return fmt.Errorf("found %d audit rows before either wrote", len(snap.Audit))
		}
		loaded()
		return tx.Save(ctx, write(statuses[i]))
	})
	if ok != 1 || moved != 1 {
		t.Fatalf("racing audit inserts: %d committed, %d lost the race; want 1 and 1", ok, moved)
	}
	if got := queryOne[int64](t, pool, "SELECT received FROM integration_metrics_hourly WHERE integration_id = 'int_a'"); got != 1 {
		t.Fatalf("received counted %d times, want once", got)
	}
}

// One transaction may hold the checkpoints of several projections (a
// rebuild applies every topic's records at once): each is read and
// advanced under its own projection's name.
func TestProjectionStoreCheckpointsOfSeveralProjections(t *testing.T) {
	t.Parallel()
	_, pool := newProjector(t)
	store := NewProjectionStore(pool)
	a, b := projections.Partition{Topic: "ta", Partition: 1}, projections.Partition{Topic: "tb", Partition: 1}
	q := projections.Query{Projection: "unused", Names: map[string]string{"ta": "pa", "tb": "pb"}, Partitions: []projections.Partition{a, b}}
	for i, next := range []int64{3, 7} {
		err := store.InTx(testContext(t), func(ctx context.Context, tx projections.Tx) error {
			snap, err := tx.Load(ctx, q)
			if err != nil {
				return err
			}
			prev := func(p projections.Partition) int64 {
				if o, ok := snap.Checkpoints[p]; ok {
					return o
				}
				return -1
			}
			if i == 1 && (prev(a) != 3 || prev(b) != 3) {
				t.Errorf("loaded %v, want 3 for both", snap.Checkpoints)
			}
			return tx.Save(ctx, projections.Writes{Checkpoints: []projections.Checkpoint{
				{Projection: "pa", Partition: a, Prev: prev(a), Next: next},
				{Projection: "pb", Partition: b, Prev: prev(b), Next: next},
			}})
		})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	got := queryOne[string](t, pool, `SELECT string_agg(projection || ' ' || topic || ' ' || next_offset, ', ' ORDER BY projection) FROM projection_checkpoints`)
	if got != "pa ta 7, pb tb 7" {
		t.Fatalf("checkpoints %q, want pa ta 7, pb tb 7", got)
	}
}

// Load locks the audit and entity rows it reads, so that a concurrent
// writer of the same rows queues behind the transaction, unless the query
// is Unlocked (a rebuild, the only writer of its rows): then another
// transaction can lock them meanwhile. Both lookup forms, for a few keys
// and for many, are checked.
func TestLoadLocksRowsUnlessUnlocked(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	ctx := testContext(t)
	n := manyKeys + 8
	recs := make([]projections.Record, n)
	for i := range n {
		recs[i] = rec("t", 0, int64(i), "int_a", fmt.Sprintf("evt_%d", i), domain.TaskCreated, tBase, fmt.Sprintf(`{"id":"k%d","title":"v"}`, i))
	}
	apply(t, p, recs...)
	store := NewProjectionStore(pool)
	// lockedBy reports whether another transaction finds the rows of the
	// first task and its event locked.
	lockedBy := func() (task, event bool) {
		t.Helper()
		try := func(sql string) bool {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, sql)
				return err
			})
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
				return true
			}
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			return false
		}
		return try("SELECT 1 FROM tasks WHERE integration_id = 'int_a' AND id = 'k0' FOR UPDATE NOWAIT"),
			try("SELECT 1 FROM webhook_events WHERE integration_id = 'int_a' AND event_id = 'evt_0' FOR UPDATE NOWAIT")
	}
	for _, keys := range []int{1, n} {
		for _, unlocked := range []bool{false, true} {
			q := projections.Query{Projection: "test", Unlocked: unlocked}
			for i := range keys {
				q.Entities = append(q.Entities, domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTask, ID: fmt.Sprintf("k%d", i)})
				q.Events = append(q.Events, projections.EventKey{IntegrationID: "int_a", EventID: fmt.Sprintf("evt_%d", i)})
			}
			err := store.InTx(ctx, func(ctx context.Context, tx projections.Tx) error {
				snap, err := tx.Load(ctx, q)
				if err != nil {
					return err
				}
				if len(snap.Entities) != keys || len(snap.Audit) != keys {
					t.Errorf("%d keys, unlocked %v: loaded %d entities and %d audit rows", keys, unlocked, len(snap.Entities), len(snap.Audit))
				}
				task, event := lockedBy()
				if task == unlocked || event == unlocked {
					t.Errorf("%d keys, unlocked %v: task row locked %v, audit row locked %v; want locked %v", keys, unlocked, task, event, !unlocked)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%d keys, unlocked %v: %v", keys, unlocked, err)
			}
		}
	}
}

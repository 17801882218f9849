package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// ProjectionStore keeps the read models of migration 00002 and satisfies
// projections.Store. It is safe for concurrent use.
type ProjectionStore struct {
	pool *pgxpool.Pool
	// async commits without waiting for the WAL flush (WithAsyncCommit).
	async bool
}

// WithAsyncCommit returns a store over the same pool whose transactions
// commit with synchronous_commit off: a commit returns before its WAL
// reaches the disk, so a crash of the database (not of this process) can
// lose the last fraction of a second of commits, whole transactions only,
// their checkpoints with them. Only writers that get lost records back by
// themselves may use it: the live projectors do, from the log (a record
// beyond its partition's checkpoint is preceded by the records in
// between, see projections.GapError).
func (s *ProjectionStore) WithAsyncCommit() *ProjectionStore {
	return &ProjectionStore{pool: s.pool, async: true}
}

var _ projections.Store = (*ProjectionStore)(nil)

// NewProjectionStore returns a store over pool; the pool's search_path
// decides which schema's tables it writes.
func NewProjectionStore(pool *pgxpool.Pool) *ProjectionStore {
	if pool == nil {
		panic("postgres: NewProjectionStore needs a pool")
	}
	return &ProjectionStore{pool: pool}
}

// InTx implements projections.Store in two round trips: BEGIN travels with
// Load's reads and COMMIT with Save's writes (Save queues them; they are sent
// when fn returns). A failed statement makes Postgres skip the rest of its
// pipeline, COMMIT included, so a transaction commits only if all of its
// writes succeeded. Errors that say the database could not do the work,
// rather than that the work is wrong, wrap projections.ErrUnavailable; a
// lost insert race on a checkpoint wraps projections.ErrCheckpointMoved.
func (s *ProjectionStore) InTx(ctx context.Context, fn func(ctx context.Context, tx projections.Tx) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify("begin", err)
	}
	// A connection left inside a transaction (a failed rollback, a
	// cancelled pipeline) is closed by the pool rather than reused.
	defer conn.Release()
	t := &projectionTx{conn: conn.Conn(), async: s.async}
	if err := fn(ctx, t); err != nil {
		t.rollback(ctx)
		return classify("project", err)
	}
	if err := t.commit(ctx); err != nil {
		t.rollback(ctx)
		return classify("commit", err)
	}
	return nil
}

// classify marks errors that are the database's fault as transient.
func classify(op string, err error) error {
	if errors.Is(err, projections.ErrUnavailable) || errors.Is(err, projections.ErrCheckpointMoved) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeUniqueViolation:
			return fmt.Errorf("%s: %w: %w", op, projections.ErrCheckpointMoved, err)
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources
			strings.HasPrefix(pgErr.Code, "57"),          // operator intervention: shutdown, cancel
			strings.HasPrefix(pgErr.Code, "58"),          // system error
			pgErr.Code == "40001", pgErr.Code == "40P01", // serialization failure, deadlock
			pgErr.Code == "55P03", // lock not available
			pgErr.Code == "25006", // read-only transaction: a standby, or writes switched off
			pgErr.Code == "42501": // insufficient privilege: revoked grants come back
			return projections.Unavailable(op, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	// Not a server answer: the connection failed or could not be made.
	return projections.Unavailable(op, err)
}

// projectionTx is one transaction of ProjectionStore: begun lazily with the
// first statements sent, its writes queued until commit.
type projectionTx struct {
	conn   *pgx.Conn
	async  bool
	begun  bool
	writes *pgx.Batch
	// copies are new audit rows to load with COPY before the writes.
	copies []projections.AuditRow
	// entityCopies are new entity rows to load with COPY before the
	// writes, by kind.
	entityCopies map[domain.Kind][]domain.Entity
	// loaded holds the checkpoints Load read and locked, -1 for those it
	// found missing: the only ones Save may advance.
	loaded map[projections.Partition]int64
}

// send sends b, preceded by BEGIN when the transaction has not begun.
func (t *projectionTx) send(ctx context.Context, b *pgx.Batch) error {
	if !t.begun {
		first := []*pgx.QueuedQuery{{SQL: "begin"}}
		if t.async {
			first = append(first, &pgx.QueuedQuery{SQL: "SELECT set_config('synchronous_commit', 'off', true)"})
		}
		b.QueuedQueries = append(first, b.QueuedQueries...)
		t.begun = true
	}
	return t.conn.SendBatch(ctx, b).Close()
}

// commit sends the queued writes and COMMIT in one round trip.
func (t *projectionTx) commit(ctx context.Context) error {
	b := t.writes
	if b == nil {
		if !t.begun {
			return nil
		}
		b = &pgx.Batch{}
	}
	t.writes = nil
	if len(t.copies) > 0 {
		if err := t.copyAudit(ctx); err != nil {
			return err
		}
	}
	if len(t.entityCopies) > 0 {
		if err := t.copyEntities(ctx); err != nil {
			return err
		}
	}
	b.Queue("commit")
	if err := t.send(ctx, b); err != nil {
		return err
	}
	t.begun = false
	return nil
}

// rollback ends a transaction that fn or its commit failed.
func (t *projectionTx) rollback(ctx context.Context) {
	if t.conn.PgConn().TxStatus() != 'I' && !t.conn.IsClosed() {
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "rollback")
	}
}

// entityTable describes one entity kind's table.
type entityTable struct {
	name    string
	columns []string // kind-specific columns, after the common ones
	scan    func(e *domain.Entity) []any
	values  func(e domain.Entity) []any
}

const commonColumns = "integration_id, id, softpro_created_at, softpro_updated_at, last_event_id, deleted, deleted_at, payload"

// columnNames lists every column the projector writes: the common ones,
// then the kind's own.
func (t entityTable) columnNames() []string {
	return append(strings.Split(commonColumns, ", "), t.columns...)
}

// row appends e's values in the order of columnNames to dst (an empty
// payload is stored as {}).
func (t entityTable) row(dst []any, e domain.Entity) []any {
	payload := string(e.Data)
	if payload == "" {
		payload = "{}"
	}
	dst = append(dst, e.Key.IntegrationID, e.Key.ID, e.CreatedAt, e.UpdatedAt, e.LastEventID, e.Deleted, e.DeletedAt, payload)
	return append(dst, t.values(e)...)
}

var entityTables = map[domain.Kind]entityTable{
	domain.KindTransaction: {
		name:    "transactions",
		columns: []string{"file_number", "status", "property_address", "closing_date", "closed_at"},
		scan: func(e *domain.Entity) []any {
			f := &e.Transaction
			return []any{&f.FileNumber, &f.Status, &f.PropertyAddress, &f.ClosingDate, &f.ClosedAt}
		},
		values: func(e domain.Entity) []any {
			f := e.Transaction
			return []any{f.FileNumber, f.Status, f.PropertyAddress, f.ClosingDate, f.ClosedAt}
		},
	},
	domain.KindContact: {
		name:    "contacts",
		columns: []string{"transaction_id", "first_name", "last_name", "email", "phone", "role"},
		scan: func(e *domain.Entity) []any {
			f := &e.Contact
			return []any{&f.TransactionID, &f.FirstName, &f.LastName, &f.Email, &f.Phone, &f.Role}
		},
		values: func(e domain.Entity) []any {
			f := e.Contact
			return []any{f.TransactionID, f.FirstName, f.LastName, f.Email, f.Phone, f.Role}
		},
	},
	domain.KindDocument: {
		name:    "documents",
		columns: []string{"transaction_id", "name", "document_type", "url"},
		scan: func(e *domain.Entity) []any {
			f := &e.Document
			return []any{&f.TransactionID, &f.Name, &f.DocumentType, &f.URL}
		},
		values: func(e domain.Entity) []any {
			f := e.Document
			return []any{f.TransactionID, f.Name, f.DocumentType, f.URL}
		},
	},
	domain.KindTask: {
		name:    "tasks",
		columns: []string{"transaction_id", "title", "status", "assigned_to", "due_date", "completed_at"},
		scan: func(e *domain.Entity) []any {
			f := &e.Task
			return []any{&f.TransactionID, &f.Title, &f.Status, &f.AssignedTo, &f.DueDate, &f.CompletedAt}
		},
		values: func(e domain.Entity) []any {
			f := e.Task
			return []any{f.TransactionID, f.Title, f.Status, f.AssignedTo, f.DueDate, f.CompletedAt}
		},
	},
}

// selectSQL reads the rows of the given keys, locking them unless lock is
// empty (see projections.Query.Unlocked). Each key is looked up by its own
// index probe (the LATERAL subquery leaves the planner no other shape): a
// plan cached while the table was small can otherwise keep answering with a
// scan of the whole key index as the table grows. Rows are locked in the
// order of the keys, which Load sorts, so concurrent batches touching the
// same rows queue rather than deadlock. Each row ends with the topic, append
// time and time of receipt of the event that last changed it, from its
// audit row (projections.Snapshot.LastChanges).
func (t entityTable) selectSQL(lock string) string {
	cols := t.columnNames()
	return "SELECT r." + strings.Join(cols, ", r.") + ", w.topic, w.appended_at, w.received_at FROM unnest($1::text[], $2::text[]) AS k(i, d)" +
		" CROSS JOIN LATERAL (SELECT " + strings.Join(cols, ", ") + " FROM " + t.name +
		" WHERE integration_id = k.i AND id = k.d" + lock + ") AS r" +
		" LEFT JOIN webhook_events w ON w.integration_id = r.integration_id AND w.event_id = r.last_event_id"
}

// selectManySQL is selectSQL for thousands of keys (rebuild and replay
// batches): one join of the keys with the table, planned for the call with
// the keys' count known, costs less than a subquery per key. Rows are
// locked in key order. Rebuilds and replays fold in append order and read
// no last change, so it ends each row with nulls.
func (t entityTable) selectManySQL(lock string) string {
	return "SELECT " + commonColumns + ", " + strings.Join(t.columns, ", ") + ", NULL::text, NULL::timestamptz, NULL::timestamptz FROM " + t.name +
		" WHERE (integration_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))" +
		" ORDER BY integration_id, id" + lock
}

// manyKeys is from how many keys a lookup uses the join form; live batches
// (at most 256 records) stay below it.
const manyKeys = 512

// forUpdate is the locking clause of Load's lookups.
const forUpdate = " FOR UPDATE"

// lookupSQL holds Load's audit and entity lookups, each in the form for a
// few keys and the form for many, locking and unlocked.
type lookupSQL struct {
	audit, auditMany   string
	entity, entityMany map[domain.Kind]string
}

// lookups[true] locks the rows it reads; lookups[false] does not.
var lookups = map[bool]lookupSQL{}

func init() {
	for _, locked := range []bool{true, false} {
		lock := ""
		if locked {
			lock = forUpdate
		}
		l := lookupSQL{audit: auditSelectSQL(lock), auditMany: auditSelectManySQL(lock),
			entity: map[domain.Kind]string{}, entityMany: map[domain.Kind]string{}}
		for k, t := range entityTables {
			l.entity[k] = t.selectSQL(lock)
			l.entityMany[k] = t.selectManySQL(lock)
		}
		lookups[locked] = l
	}
}

const checkpointSelectSQL = `SELECT topic, "partition", next_offset FROM projection_checkpoints
WHERE (projection, topic, "partition") IN (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]))
ORDER BY topic, "partition" FOR UPDATE`

func auditSelectManySQL(lock string) string {
	return `SELECT integration_id, event_id, status, received_at, processing_started_at, retry_count, last_retry_at
FROM webhook_events WHERE (integration_id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY integration_id, event_id` + lock
}

func auditSelectSQL(lock string) string {
	return `SELECT r.integration_id, r.event_id, r.status, r.received_at, r.processing_started_at, r.retry_count, r.last_retry_at
FROM unnest($1::text[], $2::text[]) AS k(i, e) CROSS JOIN LATERAL (
 SELECT integration_id, event_id, status, received_at, processing_started_at, retry_count, last_retry_at
 FROM webhook_events WHERE integration_id = k.i AND event_id = k.e` + lock + `) AS r`
}

// Load implements projections.Tx in one round trip.
func (t *projectionTx) Load(ctx context.Context, q projections.Query) (projections.Snapshot, error) {
	snap := projections.Snapshot{
		Checkpoints: map[projections.Partition]int64{},
		Audit:       map[projections.EventKey]projections.AuditRow{},
		Entities:    map[domain.EntityKey]domain.Entity{},
		LastChanges: map[domain.EntityKey]projections.LastChange{},
	}
	b := &pgx.Batch{}
	// The lookups below probe a unique key per element of their arrays. A
	// generic plan made while a table was small and unanalyzed can pick any
	// index that covers the key's first column, and kept doing so as the
	// table grew: the audit lookup probed (integration_id, received_at, id)
	// and filtered every row of the integration, 30-50 ms a lookup at
	// 200,000 rows. So the lookups are planned for each call, with table
	// scans, hash and merge joins switched off; the writes after them keep
	// their cached plans.
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
 set_config('enable_mergejoin', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)`)
	if len(q.Partitions) > 0 {
		names := make([]string, len(q.Partitions))
		topics := make([]string, len(q.Partitions))
		parts := make([]int32, len(q.Partitions))
		for i, p := range q.Partitions {
			names[i], topics[i], parts[i] = q.Projection, p.Topic, p.Partition
			if n, ok := q.Names[p.Topic]; ok {
				names[i] = n
			}
		}
		b.Queue(checkpointSelectSQL, names, topics, parts).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var p projections.Partition
				var next int64
				if err := rows.Scan(&p.Topic, &p.Partition, &next); err != nil {
					return err
				}
				snap.Checkpoints[p] = next
			}
			return rows.Err()
		})
	}
	lookup := lookups[!q.Unlocked]
	if len(q.Events) > 0 {
		keys := slices.Clone(q.Events)
		slices.SortFunc(keys, func(a, b projections.EventKey) int {
			return cmp.Or(strings.Compare(a.IntegrationID, b.IntegrationID), strings.Compare(a.EventID, b.EventID))
		})
		ints := make([]string, len(keys))
		ids := make([]string, len(keys))
		for i, k := range keys {
			ints[i], ids[i] = k.IntegrationID, k.EventID
		}
		sql := lookup.audit
		if len(keys) >= manyKeys {
			sql = lookup.auditMany
		}
		b.Queue(sql, ints, ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var r projections.AuditRow
				var status string
				if err := rows.Scan(&r.IntegrationID, &r.EventID, &status, &r.ReceivedAt, &r.ProcessingStartedAt, &r.RetryCount, &r.LastRetryAt); err != nil {
					return err
				}
				r.Status = projections.Status(status)
				snap.Audit[projections.EventKey{IntegrationID: r.IntegrationID, EventID: r.EventID}] = r
			}
			return rows.Err()
		})
	}
	byKind := map[domain.Kind][2][]string{}
	entities := slices.Clone(q.Entities)
	slices.SortFunc(entities, func(a, b domain.EntityKey) int {
		return cmp.Or(strings.Compare(a.IntegrationID, b.IntegrationID), strings.Compare(a.ID, b.ID))
	})
	for _, k := range entities {
		v := byKind[k.Kind]
		v[0] = append(v[0], k.IntegrationID)
		v[1] = append(v[1], k.ID)
		byKind[k.Kind] = v
	}
	for _, kind := range domain.Kinds {
		keys, ok := byKind[kind]
		if !ok {
			continue
		}
		table := entityTables[kind]
		sql := lookup.entity[kind]
		if len(keys[0]) >= manyKeys {
			sql = lookup.entityMany[kind]
		}
		b.Queue(sql, keys[0], keys[1]).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				e := domain.Entity{Exists: true}
				var payload []byte
				var topic *string
				var appended, received *time.Time
				dest := []any{&e.Key.IntegrationID, &e.Key.ID, &e.CreatedAt, &e.UpdatedAt, &e.LastEventID, &e.Deleted, &e.DeletedAt, &payload}
				if err := rows.Scan(append(append(dest, table.scan(&e)...), &topic, &appended, &received)...); err != nil {
					return err
				}
				e.Key.Kind = kind
				e.Data = payload
				snap.Entities[e.Key] = e
				if topic != nil && received != nil {
					last := projections.LastChange{Topic: *topic, ReceivedAt: *received}
					if appended != nil {
						last.AppendedAt = *appended
					}
					snap.LastChanges[e.Key] = last
				}
			}
			return rows.Err()
		})
	}
	b.Queue(`SELECT set_config('plan_cache_mode', 'auto', true)`)
	if err := t.send(ctx, b); err != nil {
		return projections.Snapshot{}, fmt.Errorf("load: %w", err)
	}
	if t.loaded == nil {
		t.loaded = map[projections.Partition]int64{}
	}
	for _, p := range q.Partitions {
		next, ok := snap.Checkpoints[p]
		if !ok {
			next = -1
		}
		t.loaded[p] = next
	}
	return snap, nil
}

// takeOverwrites takes the entities w marks Overwrite out of w, by kind,
// and returns w without them.
func takeOverwrites(w projections.Writes) (map[domain.Kind][]domain.Entity, projections.Writes) {
	over := map[domain.Kind][]domain.Entity{}
	rest := w
	rest.Entities, rest.NewEntities, rest.DataInAudit, rest.Overwrite = nil, nil, nil, nil
	for i, e := range w.Entities {
		if w.Overwrite[i] {
			over[e.Key.Kind] = append(over[e.Key.Kind], e)
			continue
		}
		rest.Entities = append(rest.Entities, e)
		if i < len(w.NewEntities) {
			rest.NewEntities = append(rest.NewEntities, w.NewEntities[i])
		}
		if i < len(w.DataInAudit) {
			rest.DataInAudit = append(rest.DataInAudit, w.DataInAudit[i])
		}
	}
	return over, rest
}

// splitEntities groups w's entities by kind: those for the upsert (rows
// the projector found); new ones for the plain insert; new ones of kinds
// with copyMin or more new rows, for COPY; and of those, the ones whose
// data is in their last event's audit row, for queueEntitiesFromAudit.
// Every new row is written without a conflict check, so a row another
// writer inserted meanwhile (another topic's projector creating the same
// entity) fails the transaction, which is planned again on top of it,
// rather than being overwritten by a state folded from nothing.
func splitEntities(w projections.Writes) (upserts, inserts, copies, fromAudit map[domain.Kind][]domain.Entity) {
	isNew := func(i int) bool { return i < len(w.NewEntities) && w.NewEntities[i] }
	inAudit := func(i int) bool { return i < len(w.DataInAudit) && w.DataInAudit[i] }
	fresh := map[domain.Kind]int{}
	for i, e := range w.Entities {
		if isNew(i) {
			fresh[e.Key.Kind]++
		}
	}
	copied := func(i int, kind domain.Kind) bool {
		_, known := entityTables[kind]
		return isNew(i) && known && fresh[kind] >= copyMin
	}
	upserts, inserts = map[domain.Kind][]domain.Entity{}, map[domain.Kind][]domain.Entity{}
	copies, fromAudit = map[domain.Kind][]domain.Entity{}, map[domain.Kind][]domain.Entity{}
	for i, e := range w.Entities {
		kind := e.Key.Kind
		switch {
		case !isNew(i):
			upserts[kind] = append(upserts[kind], e)
		case !copied(i, kind):
			inserts[kind] = append(inserts[kind], e)
		case inAudit(i):
			if fromAudit[kind] == nil {
				fromAudit[kind] = make([]domain.Entity, 0, fresh[kind])
			}
			fromAudit[kind] = append(fromAudit[kind], e)
		default:
			copies[kind] = append(copies[kind], e)
		}
	}
	return upserts, inserts, copies, fromAudit
}

// Save implements projections.Tx: it queues one statement per table (see
// projection_bulk.go), sent with the commit. A checkpoint advances only
// from the offset Load read: that row stays locked until the commit, so
// nobody can have moved it since; a missing row another writer inserts
// meanwhile fails the insert.
func (t *projectionTx) Save(ctx context.Context, w projections.Writes) error {
	for _, c := range w.Checkpoints {
		if prev, ok := t.loaded[c.Partition]; !ok || prev != c.Prev {
			return fmt.Errorf("save: %w: %s %s/%d advanced from %d, but this transaction read %d",
				projections.ErrCheckpointMoved, c.Projection, c.Topic, c.Partition.Partition, c.Prev, prev)
		}
	}
	if t.writes == nil {
		t.writes = &pgx.Batch{}
	}
	b := t.writes
	if len(w.Checkpoints) > 0 {
		queueCheckpointsBulk(b, w.Checkpoints)
	}
	audit := w.Audit
	if n := countNew(audit); n >= copyMin {
		rest := make([]projections.AuditRow, 0, len(audit)-n)
		t.copies = slices.Grow(t.copies, n)
		for _, r := range audit {
			if r.New {
				t.copies = append(t.copies, r)
			} else {
				rest = append(rest, r)
			}
		}
		audit = rest
	}
	if len(audit) > 0 {
		queueAudit(b, audit)
	}
	if len(w.Overwrite) > 0 {
		var over map[domain.Kind][]domain.Entity
		over, w = takeOverwrites(w)
		for _, kind := range domain.Kinds {
			if ents := over[kind]; len(ents) > 0 {
				if err := queueEntitiesBulk(b, kind, ents, entityOverwriteSQL); err != nil {
					return err
				}
			}
		}
	}
	byKind, inserts, copies, fromAudit := splitEntities(w)
	if t.entityCopies == nil {
		t.entityCopies = copies
	} else {
		for kind, ents := range copies {
			t.entityCopies[kind] = append(t.entityCopies[kind], ents...)
		}
	}
	for _, kind := range domain.Kinds {
		if ents := byKind[kind]; len(ents) > 0 {
			if err := queueEntitiesBulk(b, kind, ents, entityBulkSQL); err != nil {
				return err
			}
			delete(byKind, kind)
		}
		if ents := inserts[kind]; len(ents) > 0 {
			if err := queueEntitiesBulk(b, kind, ents, entityInsertSQL); err != nil {
				return err
			}
			delete(inserts, kind)
		}
		// After the audit rows: those of big batches are copied before
		// the batch, the others are queued above.
		if ents := fromAudit[kind]; len(ents) > 0 {
			if err := queueEntitiesFromAudit(b, kind, ents); err != nil {
				return err
			}
		}
	}
	if len(byKind) > 0 || len(inserts) > 0 {
		return fmt.Errorf("save entity: unknown kinds %v %v", byKind, inserts)
	}
	if len(w.ReplaceHistory) > 0 {
		queueHistoryDelete(b, w.ReplaceHistory)
	}
	if len(w.StatusChanges) > 0 {
		queueStatusChangesBulk(b, w.StatusChanges)
	}
	if len(w.Metrics) > 0 {
		queueMetricsBulk(b, w.Metrics)
	}
	if len(w.Recount) > 0 {
		queueMetricsRecount(b, w.Recount)
	}
	return nil
}

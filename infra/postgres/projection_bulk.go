package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// Set-based writes: each table gets one statement per transaction, its rows
// passed as arrays and expanded with unnest, so a batch of n records costs a
// handful of statements rather than several per record. Statements that
// upsert never see the same key twice (the projector's plan merges them).

var auditColumns = []string{"integration_id", "event_id", "event_type", "payload", "headers", "status",
	"received_at", "processing_started_at", "processed_at", "failed_at", "processing_time_ms", "retry_count",
	"last_retry_at", "error", "occurred_at", "applied", "source", "topic", "partition", "offset", "appended_at"}

var auditTypes = []string{"text", "text", "text", "text", "text", "text",
	"timestamptz", "timestamptz", "timestamptz", "timestamptz", "bigint", "int",
	"timestamptz", "text", "timestamptz", "bool", "text", "text", "int", "bigint", "timestamptz"}

// unnestSelect renders SELECT <exprs> FROM unnest($first::t[], …) AS u(c1, …).
func unnestSelect(types []string, first int, cast map[int]string) string {
	exprs, from := unnestParts(types, first, cast)
	return "SELECT " + strings.Join(exprs, ", ") + from
}

// unnestParts returns unnestSelect's select list (column i of the arrays is
// u.ci) and its FROM clause, for statements that select more.
func unnestParts(types []string, first int, cast map[int]string) (exprs []string, from string) {
	args := make([]string, len(types))
	names := make([]string, len(types))
	exprs = make([]string, len(types))
	for i, t := range types {
		args[i] = fmt.Sprintf("$%d::%s[]", first+i, t)
		names[i] = "c" + strconv.Itoa(i)
		exprs[i] = names[i]
		if c, ok := cast[i]; ok {
			exprs[i] = names[i] + "::" + c
		}
	}
	return exprs, " FROM unnest(" + strings.Join(args, ", ") + ") AS u(" + strings.Join(names, ", ") + ")"
}

func quoteAll(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = pgx.Identifier{c}.Sanitize()
	}
	return out
}

var auditBulkSQL = func() string {
	var set []string
	for _, c := range auditColumns[2:] {
		q := pgx.Identifier{c}.Sanitize()
		if c == "appended_at" {
			// The event's first record keeps its place in append order.
			set = append(set, q+" = coalesce(w."+q+", EXCLUDED."+q+")")
			continue
		}
		set = append(set, q+" = EXCLUDED."+q)
	}
	return "INSERT INTO webhook_events AS w (" + strings.Join(quoteAll(auditColumns), ", ") + ") " +
		unnestSelect(auditTypes, 1, map[int]string{3: "jsonb", 4: "jsonb"}) +
		" ON CONFLICT (integration_id, event_id) DO UPDATE SET " + strings.Join(set, ", ")
}()

// auditInsertSQL inserts audit rows the projector found no stored row for.
// Unlike the upsert it fails on a row inserted meanwhile by another writer
// (a poison consumer marking the event FAILED, a gap fill): the unique
// violation sends the transaction back to be planned again, rather than
// overwriting that row and counting the event as received twice.
var auditInsertSQL = "INSERT INTO webhook_events (" + strings.Join(quoteAll(auditColumns), ", ") + ") " +
	unnestSelect(auditTypes, 1, map[int]string{3: "jsonb", 4: "jsonb"})

// queueAudit writes rows in one statement: those marked New with
// auditInsertSQL, the others with the upsert.
func queueAudit(b *pgx.Batch, rows []projections.AuditRow) {
	n := countNew(rows)
	switch {
	case n == len(rows):
		queueAuditRows(b, auditInsertSQL, rows)
	case n == 0:
		queueAuditRows(b, auditBulkSQL, rows)
	default:
		fresh, known := make([]projections.AuditRow, 0, n), make([]projections.AuditRow, 0, len(rows)-n)
		for _, r := range rows {
			if r.New {
				fresh = append(fresh, r)
			} else {
				known = append(known, r)
			}
		}
		queueAuditRows(b, auditInsertSQL, fresh)
		queueAuditRows(b, auditBulkSQL, known)
	}
}

func queueAuditRows(b *pgx.Batch, sql string, rows []projections.AuditRow) {
	n := len(rows)
	var (
		ints, ids, types, payloads, headers, statuses = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		received                                      = make([]time.Time, n)
		started, processed, failed, lastRetry         = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		procMs                                        = make([]*int64, n)
		retries, parts                                = make([]int32, n), make([]int32, n)
		errs                                          = make([]*string, n)
		occurred                                      = make([]*time.Time, n)
		applied                                       = make([]*bool, n)
		sources, topics                               = make([]string, n), make([]string, n)
		offsets                                       = make([]int64, n)
		appended                                      = make([]*time.Time, n)
	)
	for i, r := range rows {
		ints[i], ids[i], types[i] = r.IntegrationID, r.EventID, string(r.EventType)
		payloads[i], headers[i], statuses[i] = jsonText(r.Payload, "null"), jsonText(r.Headers, "{}"), string(r.Status)
		received[i], started[i], processed[i], failed[i] = r.ReceivedAt, r.ProcessingStartedAt, r.ProcessedAt, r.FailedAt
		procMs[i], retries[i], lastRetry[i] = r.ProcessingTimeMs, int32(r.RetryCount), r.LastRetryAt
		if r.Error != "" {
			e := r.Error
			errs[i] = &e
		}
		if !r.OccurredAt.IsZero() {
			o := r.OccurredAt
			occurred[i] = &o
		}
		applied[i], sources[i], topics[i], parts[i], offsets[i] = r.Applied, string(r.Source), r.Topic, r.Partition, r.Offset
		appended[i] = r.AppendedAt
	}
	b.Queue(sql, ints, ids, types, payloads, headers, statuses, received, started, processed, failed,
		procMs, retries, lastRetry, errs, occurred, applied, sources, topics, parts, offsets, appended)
}

// jsonOr is b, or empty when b is.
func jsonOr(b []byte, empty string) []byte {
	if len(b) == 0 {
		return []byte(empty)
	}
	return b
}

func jsonText(b []byte, empty string) string {
	if len(b) == 0 {
		return empty
	}
	return string(b)
}

// entityColumnTypes are the SQL types of each kind's own columns, in the
// order of entityTable.columns and entityTable.values.
var entityColumnTypes = map[domain.Kind][]string{
	domain.KindTransaction: {"text", "text", "text", "date", "timestamptz"},
	domain.KindContact:     {"text", "text", "text", "text", "text", "text"},
	domain.KindDocument:    {"text", "text", "text", "text"},
	domain.KindTask:        {"text", "text", "text", "text", "timestamptz", "timestamptz"},
}

var commonTypes = []string{"text", "text", "timestamptz", "timestamptz", "text", "bool", "timestamptz", "text"}

var entityBulkSQL = entityUpsertSQL(" WHERE t.softpro_updated_at <= EXCLUDED.softpro_updated_at")

// entityOverwriteSQL writes whole folds over the stored rows whatever they
// hold (projections.Writes.Overwrite).
var entityOverwriteSQL = entityUpsertSQL("")

// entityUpsertSQL upserts entities of each kind, an existing row updated
// where the condition holds.
func entityUpsertSQL(where string) map[domain.Kind]string {
	out := map[domain.Kind]string{}
	for kind, t := range entityTables {
		cols := t.columnNames()
		types := append(append([]string(nil), commonTypes...), entityColumnTypes[kind]...)
		cast := map[int]string{7: "jsonb"}
		// softpro_created_at too: the state written is the entity's whole
		// fold, so a refold can correct a creation time the live row got
		// from an event that overtook the creating one (a manual retry).
		var set []string
		for _, c := range cols {
			if c != "integration_id" && c != "id" {
				set = append(set, c+" = EXCLUDED."+c)
			}
		}
		set = append(set, "projected_at = now()")
		out[kind] = "INSERT INTO " + t.name + " AS t (" + strings.Join(cols, ", ") + ") " + unnestSelect(types, 1, cast) +
			" ON CONFLICT (integration_id, id) DO UPDATE SET " + strings.Join(set, ", ") + where
	}
	return out
}

// payloadColumn is the position of payload among an entity table's
// columns (see commonColumns).
const payloadColumn = 7

// entityFromAuditSQL inserts new entities whose data is their last event's
// data as it came, taking it from that event's audit row (written earlier
// in the same transaction) rather than from a parameter: a rebuild then
// sends and parses each such document once instead of twice. A missing
// audit row leaves payload NULL, which the table refuses.
var entityFromAuditSQL = func() map[domain.Kind]string {
	out := map[domain.Kind]string{}
	for kind, t := range entityTables {
		cols := t.columnNames()
		types := append(append([]string(nil), commonTypes[:payloadColumn]...), entityColumnTypes[kind]...)
		exprs, from := unnestParts(types, 1, nil)
		data := "(SELECT coalesce(w.payload -> 'data', w.payload) FROM webhook_events w WHERE w.integration_id = u.c0 AND w.event_id = u.c4)"
		exprs = slices.Insert(exprs, payloadColumn, data)
		out[kind] = "INSERT INTO " + t.name + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(exprs, ", ") + from
	}
	return out
}()

// entityInsertSQL inserts entities the projector found no stored row for.
// Unlike the upsert it fails on a row another writer inserted meanwhile
// (the unique violation sends the transaction back to be planned again on
// top of that row), as auditInsertSQL does for audit rows.
var entityInsertSQL = func() map[domain.Kind]string {
	out := map[domain.Kind]string{}
	for kind, t := range entityTables {
		types := append(append([]string(nil), commonTypes...), entityColumnTypes[kind]...)
		out[kind] = "INSERT INTO " + t.name + " (" + strings.Join(t.columnNames(), ", ") + ") " +
			unnestSelect(types, 1, map[int]string{payloadColumn: "jsonb"})
	}
	return out
}()

// queueEntitiesBulk writes every entity of one kind in one statement of
// sqls (entityBulkSQL or entityInsertSQL).
func queueEntitiesBulk(b *pgx.Batch, kind domain.Kind, ents []domain.Entity, sqls map[domain.Kind]string) error {
	cols, err := entityArrays(kind, ents, true)
	if err != nil {
		return err
	}
	b.Queue(sqls[kind], cols...)
	return nil
}

// queueEntitiesFromAudit inserts new entities of one kind whose data is in
// their last event's audit row, in one statement that checks it wrote
// every one.
func queueEntitiesFromAudit(b *pgx.Batch, kind domain.Kind, ents []domain.Entity) error {
	cols, err := entityArrays(kind, ents, false)
	if err != nil {
		return err
	}
	want := int64(len(ents))
	b.Queue(entityFromAuditSQL[kind], cols...).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != want {
			return fmt.Errorf("save %s: %d of %d entities inserted from the audit", entityTables[kind].name, tag.RowsAffected(), want)
		}
		return nil
	})
	return nil
}

// entityArrays returns ents' columns as one array each, in the order of
// entityTable.columnNames, without payload unless withPayload.
func entityArrays(kind domain.Kind, ents []domain.Entity, withPayload bool) ([]any, error) {
	t, ok := entityTables[kind]
	if !ok {
		return nil, fmt.Errorf("save entity: unknown kind %q", kind)
	}
	types := append(append([]string(nil), commonTypes...), entityColumnTypes[kind]...)
	cols := make([]any, len(types))
	for c, typ := range types {
		switch typ {
		case "text":
			cols[c] = make([]string, len(ents))
		case "bool":
			cols[c] = make([]bool, len(ents))
		default:
			cols[c] = make([]*time.Time, len(ents))
		}
	}
	vals := make([]any, 0, len(types))
	for i, e := range ents {
		if !withPayload {
			e.Data = nil // dropped below: spare the copy into a string
		}
		vals = t.row(vals[:0], e)
		for c, v := range vals {
			switch col := cols[c].(type) {
			case []string:
				col[i] = v.(string)
			case []bool:
				col[i] = v.(bool)
			case []*time.Time:
				switch tv := v.(type) {
				case time.Time:
					col[i] = &tv
				case *time.Time:
					col[i] = tv
				default:
					return nil, fmt.Errorf("save %s: column %d is %T, want a time", t.name, c, v)
				}
			}
		}
	}
	if !withPayload {
		cols = slices.Delete(cols, payloadColumn, payloadColumn+1)
	}
	return cols, nil
}

const checkpointBulkUpdateSQL = `UPDATE projection_checkpoints AS c SET next_offset = u.nx, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(n, t, p, pv, nx)
WHERE c.projection = u.n AND c.topic = u.t AND c."partition" = u.p AND c.next_offset = u.pv`

const checkpointBulkInsertSQL = `INSERT INTO projection_checkpoints (projection, topic, "partition", next_offset)
SELECT n, t, p, nx FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) AS u(n, t, p, nx)`

// queueCheckpointsBulk advances every checkpoint compare-and-set, each
// under its own projection (a rebuild sets every topic's in one
// transaction once a pass is applied). Save only advances checkpoints its
// transaction read and locked, so the update always touches every row it
// names; the count is checked all the same, as a guard against a caller
// that breaks that rule.
func queueCheckpointsBulk(b *pgx.Batch, cps []projections.Checkpoint) {
	var un, ut, in, it []string
	var up, ip []int32
	var prev, unext, inext []int64
	for _, c := range cps {
		if c.Prev < 0 {
			in, it, ip, inext = append(in, c.Projection), append(it, c.Topic), append(ip, c.Partition.Partition), append(inext, c.Next)
			continue
		}
		un, ut, up, prev, unext = append(un, c.Projection), append(ut, c.Topic), append(up, c.Partition.Partition), append(prev, c.Prev), append(unext, c.Next)
	}
	if len(it) > 0 {
		b.Queue(checkpointBulkInsertSQL, in, it, ip, inext)
	}
	if len(ut) > 0 {
		want := int64(len(ut))
		b.Queue(checkpointBulkUpdateSQL, un, ut, up, prev, unext).Exec(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() != want {
				return fmt.Errorf("%w: %v: %d of %d partitions moved", projections.ErrCheckpointMoved, slices.Compact(slices.Sorted(slices.Values(un))), want-tag.RowsAffected(), want)
			}
			return nil
		})
	}
}

var metricsBulkSQL = `INSERT INTO integration_metrics_hourly AS m (integration_id, event_type, hour, received, completed, failed, skipped,
 total_processing_ms, max_processing_ms, latency_buckets)
SELECT i, t, h, rc, co, fa, sk, tp, mp, lb::bigint[] FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[],
 $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[]) AS u(i, t, h, rc, co, fa, sk, tp, mp, lb)
ON CONFLICT (integration_id, event_type, hour) DO UPDATE SET
 received = m.received + EXCLUDED.received, completed = m.completed + EXCLUDED.completed,
 failed = m.failed + EXCLUDED.failed, skipped = m.skipped + EXCLUDED.skipped,
 total_processing_ms = m.total_processing_ms + EXCLUDED.total_processing_ms,
 max_processing_ms = GREATEST(m.max_processing_ms, EXCLUDED.max_processing_ms),
 latency_buckets = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
   FROM unnest(m.latency_buckets, EXCLUDED.latency_buckets) WITH ORDINALITY AS u(a, b, i) ORDER BY i)`

// queueMetricsBulk adds every hourly delta in one statement. Histograms
// travel as array literals: unnest would flatten a two-dimensional array.
func queueMetricsBulk(b *pgx.Batch, ms []projections.MetricsDelta) {
	n := len(ms)
	ints, types, buckets := make([]string, n), make([]string, n), make([]string, n)
	hours := make([]time.Time, n)
	rc, co, fa, sk, tp, mp := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, m := range ms {
		ints[i], types[i], hours[i] = m.IntegrationID, string(m.EventType), m.Hour
		rc[i], co[i], fa[i], sk[i], tp[i], mp[i] = m.Received, m.Completed, m.Failed, m.Skipped, m.ProcessingMs, m.MaxProcessingMs
		var sb strings.Builder
		sb.WriteByte('{')
		for j, v := range m.LatencyBuckets {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatInt(v, 10))
		}
		sb.WriteByte('}')
		buckets[i] = sb.String()
	}
	b.Queue(metricsBulkSQL, ints, types, hours, rc, co, fa, sk, tp, mp, buckets)
}

// metricsRecountSQL sets hourly metrics rows from the audit rows they
// count, with the projector's rules: every row is received; completed,
// failed and skipped by status; processing times of the completed ones.
// It runs after metricsLockSQL, as a statement of its own: its snapshot
// then holds every transaction that added to those rows before the lock
// was granted, and one that adds later adds to the recounted figures.
var metricsRecountSQL = `WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(i, t, h)),
a AS (SELECT k.i, k.t, k.h, count(e.id) AS received,
  count(*) FILTER (WHERE e.status = 'COMPLETED') AS completed,
  count(*) FILTER (WHERE e.status = 'FAILED') AS failed,
  count(*) FILTER (WHERE e.status = 'SKIPPED') AS skipped,
  coalesce(sum(e.processing_time_ms) FILTER (WHERE e.status = 'COMPLETED'), 0) AS total_ms,
  coalesce(max(e.processing_time_ms) FILTER (WHERE e.status = 'COMPLETED'), 0) AS max_ms,
  ` + latencyHistogramSQL("e.processing_time_ms", "e.status = 'COMPLETED'") + ` AS buckets
  FROM k LEFT JOIN webhook_events e ON e.integration_id = k.i AND e.event_type = k.t
   AND e.received_at >= k.h AND e.received_at < k.h + interval '1 hour'
  GROUP BY k.i, k.t, k.h)
UPDATE integration_metrics_hourly m SET received = a.received, completed = a.completed, failed = a.failed,
 skipped = a.skipped, total_processing_ms = a.total_ms, max_processing_ms = a.max_ms, latency_buckets = a.buckets
FROM a WHERE m.integration_id = a.i AND m.event_type = a.t AND m.hour = a.h`

// metricsLockSQL makes sure each row to recount exists and locks it, in
// the order given (sorted, as the projector's metrics deltas are).
const metricsLockSQL = `INSERT INTO integration_metrics_hourly AS m (integration_id, event_type, hour)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT (integration_id, event_type, hour) DO UPDATE SET hour = m.hour`

// latencyHistogramSQL is an aggregate counting the rows where cond holds
// into the buckets of projections.LatencyBucketsMs by ms, as a bigint[].
func latencyHistogramSQL(ms, cond string) string {
	var sb strings.Builder
	sb.WriteString("ARRAY[")
	lo := ""
	for _, hi := range projections.LatencyBucketsMs {
		fmt.Fprintf(&sb, "count(*) FILTER (WHERE %s%s AND %s <= %d), ", cond, lo, ms, hi)
		lo = fmt.Sprintf(" AND %s > %d", ms, hi)
	}
	fmt.Fprintf(&sb, "count(*) FILTER (WHERE %s%s)]", cond, lo)
	return sb.String()
}

// queueMetricsRecount queues the lock and the recount of rows.
func queueMetricsRecount(b *pgx.Batch, rows []projections.MetricsRow) {
	ints, types, hours := make([]string, len(rows)), make([]string, len(rows)), make([]time.Time, len(rows))
	for i, r := range rows {
		ints[i], types[i], hours[i] = r.IntegrationID, string(r.EventType), r.Hour.UTC()
	}
	b.Queue(metricsLockSQL, ints, types, hours)
	b.Queue(metricsRecountSQL, ints, types, hours)
}

// statusChangesBulkSQL inserts status changes in the order given, so their
// ids (which break ties between equal times) follow the log.
const statusChangesBulkSQL = `INSERT INTO transaction_status_changes (integration_id, transaction_id, from_status, to_status, changed_at, event_id)
SELECT i, t, f, s, a, e FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
 WITH ORDINALITY AS u(i, t, f, s, a, e, n) ORDER BY n
ON CONFLICT (integration_id, event_id) DO NOTHING`

func queueStatusChangesBulk(b *pgx.Batch, cs []domain.StatusChange) {
	n := len(cs)
	ints, txs, from, to, events := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	for i, c := range cs {
		ints[i], txs[i], from[i], to[i], at[i], events[i] = c.Key.IntegrationID, c.Key.ID, c.From, c.To, c.At, c.EventID
	}
	b.Queue(statusChangesBulkSQL, ints, txs, from, to, at, events)
}

// queueHistoryDelete deletes the status changes of the transactions keys
// name.
func queueHistoryDelete(b *pgx.Batch, keys []domain.EntityKey) {
	ints, txs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ints[i], txs[i] = k.IntegrationID, k.ID
	}
	b.Queue(`DELETE FROM transaction_status_changes c USING unnest($1::text[], $2::text[]) AS k(i, t)
WHERE c.integration_id = k.i AND c.transaction_id = k.t`, ints, txs)
}

// copyMin is how many new audit rows make COPY worth its own round trip:
// rebuild and replay batches load thousands at once; live batches stay on
// the pipelined INSERT.
const copyMin = 500

func countNew(rows []projections.AuditRow) int {
	n := 0
	for _, r := range rows {
		if r.New {
			n++
		}
	}
	return n
}

// begin sends BEGIN now if the transaction has not begun (COPY cannot be
// pipelined with it).
func (t *projectionTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	return t.send(ctx, &pgx.Batch{})
}

// copyEntities loads t.entityCopies with COPY inside the transaction, one
// table at a time in kind order, with the columns the upsert would write.
func (t *projectionTx) copyEntities(ctx context.Context) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	copies := t.entityCopies
	t.entityCopies = nil
	for _, kind := range domain.Kinds {
		ents := copies[kind]
		if len(ents) == 0 {
			continue
		}
		table := entityTables[kind]
		cols := table.columnNames()
		row := make([]any, 0, len(cols)) // pgx encodes a row before asking for the next
		_, err := t.conn.CopyFrom(ctx, pgx.Identifier{table.name}, cols, pgx.CopyFromSlice(len(ents), func(i int) ([]any, error) {
			row = table.row(row[:0], ents[i])
			return row, nil
		}))
		if err != nil {
			return fmt.Errorf("copy %s: %w", table.name, err)
		}
	}
	return nil
}

// auditCopySQL loads audit rows in binary, ids included (newAuditID).
var auditCopySQL = "COPY webhook_events (id, " + strings.Join(quoteAll(auditColumns), ", ") + ") FROM STDIN BINARY"

// copyBuffers holds COPY data buffers between transactions.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// newAuditID returns a time-ordered id like the table's default (UUID
// version 7), made here so that a bulk load does not evaluate the default
// expression once per row.
func newAuditID() ([16]byte, error) {
	return uuid.NewV7()
}

// copyAudit loads t.copies with COPY inside the transaction.
func (t *projectionTx) copyAudit(ctx context.Context) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	rows := t.copies
	t.copies = nil
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	w := newCopyWriter(*buf)
	for i := range rows {
		r := &rows[i]
		id, err := newAuditID()
		if err != nil {
			return fmt.Errorf("copy audit: %w", err)
		}
		w.row(1 + len(auditColumns))
		w.uuid(id)
		w.text(r.IntegrationID)
		w.text(r.EventID)
		w.text(string(r.EventType))
		w.jsonb(jsonOr(r.Payload, "null"))
		w.jsonb(jsonOr(r.Headers, "{}"))
		w.text(string(r.Status))
		w.timestamptz(r.ReceivedAt)
		w.timestamptzOrNull(r.ProcessingStartedAt)
		w.timestamptzOrNull(r.ProcessedAt)
		w.timestamptzOrNull(r.FailedAt)
		w.int4OrNull(r.ProcessingTimeMs)
		w.int4(int32(r.RetryCount))
		w.timestamptzOrNull(r.LastRetryAt)
		w.textOrNull(r.Error)
		w.timestamptzOrNullIfZero(r.OccurredAt)
		w.boolOrNull(r.Applied)
		w.text(string(r.Source))
		w.text(r.Topic)
		w.int4(r.Partition)
		w.int8(r.Offset)
		w.timestamptzOrNull(r.AppendedAt)
	}
	data := w.bytes()
	*buf = data
	if _, err := t.conn.PgConn().CopyFrom(ctx, bytes.NewReader(data), auditCopySQL); err != nil {
		return fmt.Errorf("copy audit: %w", err)
	}
	return nil
}

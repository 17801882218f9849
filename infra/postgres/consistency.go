package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// ConsistencyStore reads an integration's read models for validation and
// gap detection. It satisfies projections.ConsistencyStore and is safe for
// concurrent use.
type ConsistencyStore struct {
	pool *pgxpool.Pool
	// q is the pool, or the transaction of a Snapshot: every read goes
	// through it; RefileAudit, the one write, through the pool.
	q querier
}

var _ projections.ConsistencyStore = (*ConsistencyStore)(nil)

// NewConsistencyStore returns a store over pool's schema.
func NewConsistencyStore(pool *pgxpool.Pool) *ConsistencyStore {
	return &ConsistencyStore{pool: pool, q: pool}
}

// Snapshot implements projections.ConsistencyStore with a read-only,
// repeatable-read transaction: every read fn makes sees the same commits.
func (s *ConsistencyStore) Snapshot(ctx context.Context, fn func(projections.ConsistencyStore) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(&ConsistencyStore{pool: s.pool, q: tx})
	})
}

// AheadOf implements projections.ConsistencyStore.
func (s *ConsistencyStore) AheadOf(ctx context.Context, integrationID string, ends map[projections.Partition]int64) (map[projections.AuditBucket]int64, map[string]bool, error) {
	var topics []string
	var parts []int32
	var offsets []int64
	for p, o := range ends {
		topics, parts, offsets = append(topics, p.Topic), append(parts, p.Partition), append(offsets, o)
	}
	rows, err := s.q.Query(ctx, `SELECT w.event_id, w.event_type, date_trunc('hour', w.received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS e(t, p, o)
JOIN webhook_events w ON w.integration_id = $1 AND w.topic = e.t AND w."partition" = e.p AND w."offset" >= e.o`,
		integrationID, topics, parts, offsets)
	if err != nil {
		return nil, nil, fmt.Errorf("audit rows ahead of the log read of %s: %w", integrationID, err)
	}
	counts, ids := map[projections.AuditBucket]int64{}, map[string]bool{}
	var id, typ string
	var hour time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &typ, &hour}, func() error {
		ids[id] = true
		counts[projections.AuditBucket{Type: domain.EventType(typ), Hour: hour.UTC()}]++
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("audit rows ahead of the log read of %s: %w", integrationID, err)
	}
	return counts, ids, nil
}

// EntityRows implements projections.ConsistencyStore.
func (s *ConsistencyStore) EntityRows(ctx context.Context, integrationID string) ([]domain.Entity, error) {
	var out []domain.Entity
	for _, kind := range domain.Kinds {
		t := entityTables[kind]
		rows, err := s.q.Query(ctx, "SELECT "+commonColumns+", "+strings.Join(t.columns, ", ")+" FROM "+t.name+
			" WHERE integration_id = $1 ORDER BY id", integrationID)
		if err != nil {
			return nil, fmt.Errorf("entity rows of %s: %w", integrationID, err)
		}
		for rows.Next() {
			e := domain.Entity{Exists: true}
			var payload []byte
			dest := []any{&e.Key.IntegrationID, &e.Key.ID, &e.CreatedAt, &e.UpdatedAt, &e.LastEventID, &e.Deleted, &e.DeletedAt, &payload}
			if err := rows.Scan(append(dest, t.scan(&e)...)...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("entity rows of %s: %w", integrationID, err)
			}
			e.Key.Kind = kind
			e.Data = payload
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("entity rows of %s: %w", integrationID, err)
		}
	}
	return out, nil
}

// StatusChanges implements projections.ConsistencyStore.
func (s *ConsistencyStore) StatusChanges(ctx context.Context, integrationID string) ([]domain.StatusChange, error) {
	rows, err := s.q.Query(ctx, `SELECT transaction_id, from_status, to_status, changed_at, event_id
FROM transaction_status_changes WHERE integration_id = $1`, integrationID)
	if err != nil {
		return nil, fmt.Errorf("status changes of %s: %w", integrationID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.StatusChange, error) {
		c := domain.StatusChange{Key: domain.EntityKey{IntegrationID: integrationID, Kind: domain.KindTransaction}}
		err := row.Scan(&c.Key.ID, &c.From, &c.To, &c.At, &c.EventID)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("status changes of %s: %w", integrationID, err)
	}
	return out, nil
}

// AuditCounts implements projections.ConsistencyStore.
func (s *ConsistencyStore) AuditCounts(ctx context.Context, integrationID string) (map[projections.AuditBucket]projections.StatusCounts, error) {
	return s.counts(ctx, "audit counts", `SELECT event_type, date_trunc('hour', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
 count(*), count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'),
 count(*) FILTER (WHERE status = 'SKIPPED'),
 coalesce(sum(processing_time_ms) FILTER (WHERE status = 'COMPLETED'), 0),
 coalesce(max(processing_time_ms) FILTER (WHERE status = 'COMPLETED'), 0),
 `+latencyHistogramSQL("processing_time_ms", "status = 'COMPLETED'")+`
FROM webhook_events WHERE integration_id = $1 GROUP BY 1, 2`, integrationID)
}

// MetricsCounts implements projections.ConsistencyStore.
func (s *ConsistencyStore) MetricsCounts(ctx context.Context, integrationID string) (map[projections.AuditBucket]projections.StatusCounts, error) {
	return s.counts(ctx, "metrics counts", `SELECT event_type, hour, received, completed, failed, skipped,
 total_processing_ms, max_processing_ms, latency_buckets
FROM integration_metrics_hourly WHERE integration_id = $1`, integrationID)
}

// AuditRows implements projections.ConsistencyStore.
func (s *ConsistencyStore) AuditRows(ctx context.Context, integrationID string, fn func(projections.AuditRef) error) error {
	rows, err := s.q.Query(ctx, `SELECT event_id, event_type, received_at FROM webhook_events WHERE integration_id = $1`, integrationID)
	if err != nil {
		return fmt.Errorf("audit rows of %s: %w", integrationID, err)
	}
	var a projections.AuditRef
	_, err = pgx.ForEachRow(rows, []any{&a.EventID, &a.Type, &a.ReceivedAt}, func() error {
		a.ReceivedAt = a.ReceivedAt.UTC()
		return fn(a)
	})
	if err != nil {
		return fmt.Errorf("audit rows of %s: %w", integrationID, err)
	}
	return nil
}

// RefileAudit implements projections.ConsistencyStore.
func (s *ConsistencyStore) RefileAudit(ctx context.Context, integrationID string, refs []projections.AuditRef) (int, error) {
	ids, types, at := make([]string, len(refs)), make([]string, len(refs)), make([]time.Time, len(refs))
	for i, r := range refs {
		ids[i], types[i], at[i] = r.EventID, string(r.Type), r.ReceivedAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_events w SET event_type = u.t, received_at = u.r
FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS u(e, t, r)
WHERE w.integration_id = $1 AND w.event_id = u.e AND (w.event_type, w.received_at) IS DISTINCT FROM (u.t, u.r)`,
		integrationID, ids, types, at)
	if err != nil {
		return 0, fmt.Errorf("refile audit rows of %s: %w", integrationID, err)
	}
	return int(tag.RowsAffected()), nil
}

// counts reads rows of (type, hour, received, completed, failed, skipped,
// total, largest and histogram of the processing times). A histogram
// stored empty counts nothing; one not laid out as LatencyBucketsMs
// (changed behind the system's back) reads as -1 in every bucket, which no
// count of audit rows matches.
func (s *ConsistencyStore) counts(ctx context.Context, what, sql, integrationID string) (map[projections.AuditBucket]projections.StatusCounts, error) {
	rows, err := s.q.Query(ctx, sql, integrationID)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", what, integrationID, err)
	}
	out := map[projections.AuditBucket]projections.StatusCounts{}
	var typ string
	var hour time.Time
	var c projections.StatusCounts
	var latency []*int64
	_, err = pgx.ForEachRow(rows, []any{&typ, &hour, &c.Received, &c.Completed, &c.Failed, &c.Skipped, &c.ProcessingMs, &c.MaxProcessingMs, &latency}, func() error {
		c.Latency = projections.LatencyHistogram{}
		switch len(latency) {
		case 0:
		case len(c.Latency):
			for i, n := range latency {
				c.Latency[i] = -1 // a NULL count, as a wrong layout
				if n != nil {
					c.Latency[i] = *n
				}
			}
		default:
			for i := range c.Latency {
				c.Latency[i] = -1
			}
		}
		out[projections.AuditBucket{Type: domain.EventType(typ), Hour: hour.UTC()}] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", what, integrationID, err)
	}
	return out, nil
}

// FailedEvents counts the integration's FAILED events and the window of
// their receipt.
func (s *ConsistencyStore) FailedEvents(ctx context.Context, integrationID string) (n int64, from, to time.Time, err error) {
	var lo, hi *time.Time
	err = s.q.QueryRow(ctx, `SELECT count(*), min(received_at), max(received_at) FROM webhook_events
WHERE integration_id = $1 AND status = 'FAILED'`, integrationID).Scan(&n, &lo, &hi)
	if err != nil {
		return 0, time.Time{}, time.Time{}, fmt.Errorf("failed events of %s: %w", integrationID, err)
	}
	if lo != nil {
		from, to = lo.UTC(), hi.UTC()
	}
	return n, from, to, nil
}

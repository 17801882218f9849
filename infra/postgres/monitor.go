package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roisystems/softprohub/projections"
)

var (
	_ projections.MonitorStore  = (*QueryStore)(nil)
	_ projections.SettledLookup = (*QueryStore)(nil)
)

// SyncFacts reads the integration's sync runs (migration 00010) and the
// receipt of its newest event. A run's duration runs from its start to
// its finish; its records are the sum of its per-type counts.
func (s *QueryStore) SyncFacts(ctx context.Context, integrationID string, since time.Time) (projections.SyncFacts, *time.Time, error) {
	var f projections.SyncFacts
	var lastEvent *time.Time
	err := s.pool.QueryRow(ctx, `SELECT
 (SELECT max(received_at) FROM webhook_events WHERE integration_id = $1),
 (SELECT max(started_at) FROM sync_runs WHERE integration_id = $1),
 (SELECT max(finished_at) FROM sync_runs WHERE integration_id = $1 AND status = 'succeeded'),
 count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
 coalesce(round(sum(extract(epoch FROM finished_at - started_at) * 1000)), 0)::bigint,
 coalesce(sum((SELECT sum(value::bigint) FROM jsonb_each_text(records))), 0)::bigint
 FROM sync_runs WHERE integration_id = $1 AND status <> 'running' AND finished_at >= $2`, integrationID, since).
		Scan(&lastEvent, &f.LastRunAt, &f.LastSucceededAt, &f.Succeeded, &f.Failed, &f.DurationMs, &f.Records)
	if err != nil {
		return f, nil, classifyQuery("sync facts", err)
	}
	f.LastRunAt, f.LastSucceededAt = utcPtr(f.LastRunAt), utcPtr(f.LastSucceededAt)
	return f, utcPtr(lastEvent), nil
}

// Hours adds up, per UTC hour from since on, the integration's events by
// final state from integration_metrics_hourly (counted in the hour they
// were received) and its finished sync runs (in the hour they finished).
// date_bin from a UTC midnight gives the UTC hour as date_trunc with a
// time zone does, without a time zone lookup per run.
func (s *QueryStore) Hours(ctx context.Context, integrationID string, since time.Time) ([]projections.HourFigures, error) {
	rows, err := s.pool.Query(ctx, `SELECT hour, sum(finished)::bigint, sum(failed)::bigint, sum(succeeded_runs)::bigint, sum(failed_runs)::bigint
 FROM (
  SELECT hour, completed + failed + skipped AS finished, failed, 0 AS succeeded_runs, 0 AS failed_runs
   FROM integration_metrics_hourly WHERE integration_id = $1 AND hour >= $2
  UNION ALL
  SELECT date_bin('1 hour', finished_at, timestamptz '2000-01-01 00:00:00+00'), 0, 0, count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')
   FROM sync_runs WHERE integration_id = $1 AND status <> 'running' AND finished_at >= $2 GROUP BY 1
 ) h GROUP BY hour HAVING sum(finished) > 0 OR sum(succeeded_runs) + sum(failed_runs) > 0 ORDER BY hour`, integrationID, since)
	if err != nil {
		return nil, classifyQuery("hours", err)
	}
	hours, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projections.HourFigures, error) {
		var h projections.HourFigures
		err := r.Scan(&h.Hour, &h.EventsFinished, &h.EventsFailed, &h.RunsSucceeded, &h.RunsFailed)
		h.Hour = h.Hour.UTC()
		return h, err
	})
	if err != nil {
		return nil, classifyQuery("hours", err)
	}
	return hours, nil
}

// TopErrors groups the integration's FAILED events received since by
// their error, and its failed sync runs finished since by theirs. An
// event's error names its log position and its event id ("project
// topic/partition@offset: ... type eventId: reason"); both are taken out,
// so that events failing for one reason share one entry.
func (s *QueryStore) TopErrors(ctx context.Context, integrationID string, since time.Time, limit, ids int) ([]projections.ErrorSummary, error) {
	rows, err := s.pool.Query(ctx, `SELECT * FROM (
  SELECT 'webhook', msg, count(*), max(at), (array_agg(event_id ORDER BY at DESC, event_id))[1:$3], '{}'::bigint[]
   FROM (SELECT event_id, coalesce(failed_at, received_at) AS at,
     regexp_replace(replace(coalesce(error, ''), ' ' || event_id || ':', ':'), '/[0-9]+@[0-9]+:', ':', 'g') AS msg
     FROM webhook_events WHERE integration_id = $1 AND status = 'FAILED' AND received_at >= $2) f
   GROUP BY msg
  UNION ALL
  SELECT 'sync', coalesce(error, ''), count(*), max(finished_at), '{}'::text[], (array_agg(id ORDER BY id DESC))[1:$3]
   FROM sync_runs WHERE integration_id = $1 AND status = 'failed' AND finished_at >= $2 GROUP BY 2
 ) e ORDER BY 3 DESC, 4 DESC, 2 LIMIT $4`, integrationID, since, ids, limit)
	if err != nil {
		return nil, classifyQuery("top errors", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projections.ErrorSummary, error) {
		var e projections.ErrorSummary
		err := r.Scan(&e.Source, &e.Error, &e.Count, &e.LastSeenAt, &e.EventIDs, &e.RunIDs)
		e.LastSeenAt = e.LastSeenAt.UTC()
		if e.EventIDs == nil {
			e.EventIDs = []string{}
		}
		if e.RunIDs == nil {
			e.RunIDs = []int64{}
		}
		return e, err
	})
	if err != nil {
		return nil, classifyQuery("top errors", err)
	}
	return out, nil
}

// settledChunk bounds the event ids of one Settled query.
const settledChunk = 10000

// Settled returns those of eventIDs whose audit row is COMPLETED, SKIPPED
// or FAILED, through the (integration_id, event_id) key.
func (s *QueryStore) Settled(ctx context.Context, integrationID string, eventIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(eventIDs) > 0 {
		chunk := eventIDs[:min(len(eventIDs), settledChunk)]
		eventIDs = eventIDs[len(chunk):]
		rows, err := s.pool.Query(ctx, `SELECT event_id FROM webhook_events
 WHERE integration_id = $1 AND event_id = ANY($2) AND status IN ('COMPLETED', 'SKIPPED', 'FAILED')`, integrationID, chunk)
		if err != nil {
			return nil, classifyQuery("settled events", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, classifyQuery("settled events", err)
		}
		for _, id := range ids {
			out[id] = true
		}
	}
	return out, nil
}

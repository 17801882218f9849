package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

const hourlyMetricsDump = `SELECT integration_id, event_type, hour, received, completed, failed, skipped,
 total_processing_ms, max_processing_ms, latency_buckets FROM integration_metrics_hourly ORDER BY 1, 2, 3`

// dumpRows renders every row sql returns, one line each.
func dumpRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	rows, err := pool.Query(testContext(t), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		v, err := r.Values()
		return fmt.Sprint(v), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(lines)
}

func recount(t *testing.T, pool *pgxpool.Pool, rows []projections.MetricsRow) {
	t.Helper()
	err := NewProjectionStore(pool).InTx(testContext(t), func(ctx context.Context, tx projections.Tx) error {
		return tx.Save(ctx, projections.Writes{Recount: rows})
	})
	if err != nil {
		t.Fatalf("recount: %v", err)
	}
}

func TestRecountSetsHourlyMetricsAsTheProjectorCountedThem(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	ctx := testContext(t)
	now := time.Now()
	// Completed events with processing times over several buckets and two
	// hours, a skipped one, a failed one, one still being retried, and
	// another integration's.
	var recs []projections.Record
	for i, ago := range []time.Duration{time.Millisecond, 30 * time.Millisecond, 700 * time.Millisecond, 45 * time.Second, 2 * time.Hour} {
		r := rec("t", 0, int64(i), "int_a", fmt.Sprintf("evt_%d", i), domain.TaskCreated, tBase, fmt.Sprintf(`{"id":"k%d","title":"T"}`, i))
		r.Envelope.ReceivedAt = now.Add(-ago)
		recs = append(recs, r)
	}
	recs = append(recs,
		rec("t", 0, 5, "int_a", "evt_5", "custom.event", tBase, `{}`),
		rec("t", 1, 0, "int_b", "evt_b", domain.TaskCreated, tBase, `{"id":"k9","title":"T"}`))
	apply(t, p, recs...)
	bad := rec("t", 0, 6, "int_a", "evt_bad", domain.TaskCreated, tBase, `{"title":"no id"}`)
	if _, err := p.Apply(ctx, bad); !projections.IsPermanent(err) {
		t.Fatalf("apply unprojectable = %v, want permanent", err)
	}
	err := projections.NewProjector("poison", NewProjectionStore(pool), nil).Fail(ctx, projections.Failure{
		Record: projections.Record{Partition: projections.Partition{Topic: "poison"}, Envelope: bad.Envelope},
		Origin: bad.Partition, OriginOffset: bad.Offset, Reason: "no id", Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RecordAttempt(ctx, rec("t", 0, 7, "int_a", "evt_retrying", domain.TaskCreated, tBase, `{"id":"k7"}`), errors.New("hiccup")); err != nil {
		t.Fatal(err)
	}
	want := dumpRows(t, pool, hourlyMetricsDump)
	wantTotals := dumpRows(t, pool, `SELECT event_type, hour, received, completed, failed, skipped, total_processing_ms
 FROM metrics_hourly_totals WHERE received <> 0 ORDER BY 1, 2`)

	var keys []projections.MetricsRow
	rows, err := pool.Query(ctx, `SELECT integration_id, event_type, hour FROM integration_metrics_hourly WHERE integration_id = 'int_a' ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err = pgx.CollectRows(rows, pgx.RowToStructByPos[projections.MetricsRow])
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 3 {
		t.Fatalf("fixture made %d metrics rows for int_a, want types and hours apart: %v", len(keys), keys)
	}

	// Counts gone wrong (a restored audit row counted twice).
	if _, err := pool.Exec(ctx, `UPDATE integration_metrics_hourly SET received = received + 3, completed = 0, failed = 7,
 total_processing_ms = 1, max_processing_ms = 0, latency_buckets = '{}' WHERE integration_id = 'int_a'`); err != nil {
		t.Fatal(err)
	}
	recount(t, pool, keys)
	if got := dumpRows(t, pool, hourlyMetricsDump); got != want {
		t.Fatalf("after the recount:\n got %s\nwant %s", got, want)
	}
	// The totals follow every change of the hourly rows.
	if got := dumpRows(t, pool, `SELECT event_type, hour, sum(received)::bigint, sum(completed)::bigint, sum(failed)::bigint, sum(skipped)::bigint,
 sum(total_processing_ms)::bigint
 FROM integration_metrics_hourly GROUP BY 1, 2 ORDER BY 1, 2`); got != wantTotals {
		t.Fatalf("totals after the recount:\n got %s\nwant %s", got, wantTotals)
	}
	if got := dumpRows(t, pool, `SELECT event_type, hour, received, completed, failed, skipped, total_processing_ms
 FROM metrics_hourly_totals WHERE received <> 0 ORDER BY 1, 2`); got != wantTotals {
		t.Fatalf("metrics_hourly_totals after the recount:\n got %s\nwant %s", got, wantTotals)
	}

	// A row lost altogether is inserted again, and the totals, which
	// follow deletes too, count it once.
	if _, err := pool.Exec(ctx, `DELETE FROM integration_metrics_hourly WHERE integration_id = 'int_a' AND event_type = 'custom.event'`); err != nil {
		t.Fatal(err)
	}
	recount(t, pool, keys)
	if got := dumpRows(t, pool, hourlyMetricsDump); got != want {
		t.Fatalf("after the recount of a deleted row:\n got %s\nwant %s", got, want)
	}
	if got := dumpRows(t, pool, `SELECT event_type, hour, received, completed, failed, skipped, total_processing_ms
 FROM metrics_hourly_totals WHERE received <> 0 ORDER BY 1, 2`); got != wantTotals {
		t.Fatalf("metrics_hourly_totals after the recount of a deleted row:\n got %s\nwant %s", got, wantTotals)
	}

	// Bucket edges: a processing time equal to a bound falls in that bound's
	// bucket, one more in the next.
	if _, err := pool.Exec(ctx, `UPDATE webhook_events SET processing_time_ms = CASE event_id WHEN 'evt_0' THEN 10 ELSE 11 END
 WHERE event_id IN ('evt_0', 'evt_1')`); err != nil {
		t.Fatal(err)
	}
	recount(t, pool, keys)
	hour := now.UTC().Truncate(time.Hour)
	var buckets []int64
	var maxMs int64
	if err := pool.QueryRow(ctx, `SELECT latency_buckets, max_processing_ms FROM integration_metrics_hourly
 WHERE integration_id = 'int_a' AND event_type = $1 AND hour = $2`, string(domain.TaskCreated), hour).Scan(&buckets, &maxMs); err != nil {
		t.Fatal(err)
	}
	times := queryOne[[]int64](t, pool, `SELECT array_agg(processing_time_ms) FROM webhook_events
 WHERE integration_id = 'int_a' AND event_type = $1 AND status = 'COMPLETED' AND received_at >= $2 AND received_at < $2 + interval '1 hour'`,
		string(domain.TaskCreated), hour)
	wantBuckets := make([]int64, len(projections.LatencyBucketsMs)+1)
	for _, ms := range times {
		i, _ := slices.BinarySearch(projections.LatencyBucketsMs[:], ms)
		wantBuckets[i]++
	}
	if !slices.Contains(times, 10) || !slices.Contains(times, 11) || !slices.Equal(buckets, wantBuckets) || maxMs != slices.Max(times) {
		t.Fatalf("processing times %v: buckets %v max %d, want %v max %d", times, buckets, maxMs, wantBuckets, slices.Max(times))
	}
}

// A recount racing live writers of the same metrics row loses none of
// their counts: it counts only once it holds the row, so a writer that
// added before is in its count, and one that adds after adds to it.
func TestRecountRacingLiveWritersLosesNoCount(t *testing.T) {
	t.Parallel()
	p, pool := newProjector(t)
	store := NewProjectionStore(pool)
	ctx := testContext(t)
	received := tBase
	key := projections.MetricsRow{IntegrationID: "int_a", EventType: domain.TaskCreated, Hour: received.Truncate(time.Hour)}
	const writers, each = 3, 30
	errs := make(chan error, 2*writers)
	for w := range writers {
		// Live: a new event at a time, counted by adding.
		go func() {
			for i := range each {
				r := rec("t", int32(w), int64(i), "int_a", fmt.Sprintf("live_%d_%d", w, i), domain.TaskCreated, tBase, fmt.Sprintf(`{"id":"l%d_%d"}`, w, i))
				r.Envelope.ReceivedAt = received
				if _, err := p.Apply(ctx, r); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		// Replay: an audit row restored at a time, its hour recounted.
		go func() {
			for i := range each {
				ms := int64(5)
				row := projections.AuditRow{IntegrationID: "int_a", EventID: fmt.Sprintf("restored_%d_%d", w, i), EventType: domain.TaskCreated,
					Payload: []byte(`{}`), Status: projections.StatusCompleted, ReceivedAt: received, ProcessedAt: &received,
					ProcessingTimeMs: &ms, OccurredAt: tBase, Source: domain.SourceWebhook, Topic: "t", New: true}
				err := retryDeadlocks(func() error {
					return store.InTx(ctx, func(ctx context.Context, tx projections.Tx) error {
						return tx.Save(ctx, projections.Writes{Audit: []projections.AuditRow{row}, Recount: []projections.MetricsRow{key}})
					})
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 * writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := dumpRows(t, pool, `SELECT received, completed, total_processing_ms FROM integration_metrics_hourly WHERE integration_id = 'int_a'`)
	want := dumpRows(t, pool, `SELECT count(*), count(*), sum(processing_time_ms)::bigint FROM webhook_events WHERE integration_id = 'int_a'`)
	if n := queryOne[int64](t, pool, `SELECT count(*) FROM webhook_events WHERE integration_id = 'int_a'`); n != 2*writers*each || got != want {
		t.Fatalf("metrics row %s, audit rows (%d) %s", got, n, want)
	}
}

func retryDeadlocks(fn func() error) error {
	for {
		err := fn()
		if err == nil || !projections.IsTransient(err) {
			return err
		}
	}
}

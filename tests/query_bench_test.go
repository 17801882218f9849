package tests

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	httpapi "github.com/roisystems/softprohub/handlers/http"
)

// BenchmarkQueryAPI (make bench-api) projects 1,000,000 events over 100
// integrations into the schema bench_api (seeded once with SQL, as the
// projector would have written them, and reused by later runs), serves the
// API and prints p50/p99 latency and requests/s of its main reads.
func BenchmarkQueryAPI(b *testing.B) {
	ctx := context.Background()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", "bench_api")
	u.RawQuery = q.Encode()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = u.String()
	cfg.RedisURL = os.Getenv("TEST_REDIS_URL")
	if cfg.RedisURL == "" {
		cfg.RedisURL = "redis://127.0.0.1:6379/0"
	}
	cfg.HTTPAddr, cfg.DataDir, cfg.KafkaEmbeddedPort = "127.0.0.1:0", b.TempDir(), 0
	cfg.JWTSecret, cfg.SecretsKey, cfg.LogLevel = "bench-jwt", "bench-key", "error"
	a, err := app.New(ctx, cfg, app.Options{Roles: app.Roles{API: true, Ingest: true}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Listen(); err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	defer func() { cancel(); <-done }()

	seedBench(b, a)
	seedBenchSyncs(b, a)
	token, _ := httpapi.IssueToken([]byte(cfg.JWTSecret), "bench", httpapi.RoleAnalyst, time.Hour, time.Now())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	baseURL := "http://" + a.Addr()
	day := url.QueryEscape(time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339))
	scenarios := []struct{ name, path string }{
		{"events list, no filter", "/api/v1/integrations/softpro/webhooks/events"},
		{"events list, integration", "/api/v1/integrations/softpro/webhooks/events?integrationId=bench_42"},
		{"events list, type+status+24h", "/api/v1/integrations/softpro/webhooks/events?eventType=task.created&status=COMPLETED&startDate=" + day},
		{"events list, FAILED", "/api/v1/integrations/softpro/webhooks/events?status=FAILED&limit=100"},
		{"transaction by id", "/api/v1/integrations/softpro/bench_42/transactions/txn_4242"},
		{"transactions list, status", "/api/v1/integrations/softpro/bench_42/transactions?status=open"},
		{"stats 24h", "/api/v1/integrations/softpro/webhooks/stats?period=24h"},
		{"stats 30d", "/api/v1/integrations/softpro/webhooks/stats?period=30d"},
		{"stats 30d, integration", "/api/v1/integrations/softpro/webhooks/stats?period=30d&integrationId=bench_42"},
		{"health, integration", "/api/v1/integrations/softpro/bench_42/health"},
		{"metrics, integration", "/api/v1/integrations/softpro/bench_42/metrics"},
	}
	const workers, dur = 4, 5 * time.Second
	fmt.Printf("%-32s %9s %9s %9s %8s\n", "scenario", "p50 ms", "p99 ms", "req/s", "requests")
	for _, sc := range scenarios {
		get := func() (int, error) {
			req, _ := http.NewRequest(http.MethodGet, baseURL+sc.path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if s, err := get(); err != nil || s != 200 {
			b.Fatalf("%s: %d %v", sc.name, s, err)
		}
		var mu sync.Mutex
		var lat []time.Duration
		var n atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Since(start) < dur {
					t0 := time.Now()
					if s, err := get(); err != nil || s != 200 {
						b.Errorf("%s: %d %v", sc.name, s, err)
						return
					}
					mine = append(mine, time.Since(t0))
					n.Add(1)
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		fmt.Printf("%-32s %9.2f %9.2f %9.0f %8d\n", sc.name, pct(0.50), pct(0.99), float64(n.Load())/elapsed.Seconds(), n.Load())
	}
}

// seedBench fills bench_api unless it already holds the 1,000,000 events.
func seedBench(b *testing.B, a *app.App) {
	ctx := context.Background()
	db := a.Pool()
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM webhook_events`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n == 1_000_000 {
		fmt.Println("reusing the seeded schema bench_api (1,000,000 events)")
		return
	}
	start := time.Now()
	for _, s := range []string{
		`TRUNCATE webhook_events, integration_metrics_hourly, transactions, transaction_status_changes, contacts, documents, tasks`,
		// 1,000,000 events over 100 integrations and the last 30 days;
		// 2 % failed, 1 % of an unknown type (skipped), the rest completed.
		`INSERT INTO webhook_events (integration_id, event_id, event_type, payload, status, received_at, processing_started_at,
 processed_at, failed_at, processing_time_ms, error, occurred_at, applied, source, topic, "partition", "offset")
 SELECT 'bench_' || (g % 100), 'evt_' || g, t.typ, jsonb_build_object('id', 'evt_' || g, 'type', t.typ, 'data', jsonb_build_object('id', 'txn_' || (g % 10000))),
  CASE WHEN g % 50 = 0 THEN 'FAILED' WHEN g % 100 = 1 THEN 'SKIPPED' ELSE 'COMPLETED' END,
  r.at, r.at, CASE WHEN g % 50 = 0 THEN NULL ELSE r.at + interval '40 ms' END, CASE WHEN g % 50 = 0 THEN r.at END,
  CASE WHEN g % 50 = 0 OR g % 100 = 1 THEN NULL ELSE 20 + g % 200 END, CASE WHEN g % 50 = 0 THEN 'permanent: bench' END,
  r.at, true, 'webhook', 'softpro.transactions.v1', g % 12, g / 12
 FROM generate_series(1, 1000000) g,
 LATERAL (SELECT CASE WHEN g % 100 = 1 THEN 'survey.sent' ELSE (ARRAY['transaction.updated','transaction.status_changed','document.uploaded','contact.updated','task.created','closing.scheduled'])[1 + g % 6] END AS typ) t,
 LATERAL (SELECT now() - ((g::float8 / 1000000) * interval '30 days') AS at) r`,
		`INSERT INTO integration_metrics_hourly (integration_id, event_type, hour, received, completed, failed, skipped, total_processing_ms, max_processing_ms)
 SELECT integration_id, event_type, date_trunc('hour', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
  count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'), count(*) FILTER (WHERE status = 'SKIPPED'),
  coalesce(sum(processing_time_ms) FILTER (WHERE status = 'COMPLETED'), 0), coalesce(max(processing_time_ms), 0)
 FROM webhook_events GROUP BY 1, 2, 3`,
		`INSERT INTO transactions (integration_id, id, file_number, status, property_address, closing_date, softpro_created_at, softpro_updated_at, last_event_id, payload)
 SELECT 'bench_' || (g % 100), 'txn_' || g, 'F-' || g, (ARRAY['open','in_progress','closed'])[1 + g % 3], g || ' Main St', date '2024-01-01' + (g % 700),
  now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval, 'evt_' || g, jsonb_build_object('id', 'txn_' || g)
 FROM generate_series(1, 1000000) g WHERE g % 10 = 2`,
		// The roll-up trigger updated each of the 5,000 totals rows some
		// 40 times within the statement above, and none of those versions
		// could be pruned while it ran: 20 MB of dead versions, read by
		// every total over all hours (0.5 MB once compacted). The live
		// projectors update them a batch per transaction, and page pruning
		// and autovacuum reclaim the versions before as they go.
		`VACUUM FULL metrics_hourly_totals`,
		`VACUUM ANALYZE`,
	} {
		if _, err := db.Exec(ctx, s); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	fmt.Printf("seeded 1,000,000 events over 100 integrations in %v\n", time.Since(start).Round(time.Second))
}

// seedBenchSyncs gives the benchmark's integrations their rows and 30 days
// of sync runs, one every 15 minutes (5 % failed), unless they have them:
// the health and metrics routes read both.
func seedBenchSyncs(b *testing.B, a *app.App) {
	ctx := context.Background()
	db := a.Pool()
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM sync_runs`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n > 0 {
		return
	}
	for _, s := range []string{
		`INSERT INTO softpro_integrations (id, organization_id) SELECT 'bench_' || i, 'org_bench' FROM generate_series(0, 99) i ON CONFLICT DO NOTHING`,
		`INSERT INTO sync_runs (integration_id, trigger, types, status, started_at, finished_at, records, error)
 SELECT 'bench_' || i, 'scheduled', ARRAY['transactions'], CASE WHEN k % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
  now() - k * interval '15 minutes', now() - k * interval '15 minutes' + interval '2 seconds',
  jsonb_build_object('transactions', k % 7), CASE WHEN k % 20 = 0 THEN 'softpro api: 500 bench' END
 FROM generate_series(0, 99) i, generate_series(1, 2880) k ORDER BY k DESC, i`,
		`ANALYZE softpro_integrations`,
		`ANALYZE sync_runs`,
	} {
		if _, err := db.Exec(ctx, s); err != nil {
			b.Fatalf("seed syncs: %v", err)
		}
	}
}

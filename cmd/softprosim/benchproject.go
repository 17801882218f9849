package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/ingest"
)

type benchProjectConfig struct {
	events       int
	integrations int
	partitions   int
	concurrency  int
	databaseURL  string
	redisURL     string
	rate         int
	latencyFor   time.Duration
	seed         uint64
	cpuProfile   string
}

func newBenchProjectCmd() *cobra.Command {
	cfg := benchProjectConfig{}
	cmd := &cobra.Command{
		Use:   "bench-project",
		Short: "Benchmark the live projections: backlog drain rate, end-to-end latency, and a COPY ceiling",
		Long: "Fills the event topics of an embedded broker with --events events over --integrations\n" +
			"integrations (every family), starts the live projectors and prints events/s until every\n" +
			"event is visible in the read models; then, with ingest taking --rate webhooks/s, prints the\n" +
			"end-to-end latency (200 OK to row visible); then, as a ceiling, the rate at which the same\n" +
			"rows insert into Postgres with pgx CopyFrom, and the ratio.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchProject(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.events, "events", 200_000, "events in the backlog")
	f.IntVar(&cfg.integrations, "integrations", 50, "integrations the events spread over")
	f.IntVar(&cfg.partitions, "partitions", app.DefaultConfig().KafkaPartitions, "partitions per topic (KAFKA_PARTITIONS's default)")
	f.IntVar(&cfg.concurrency, "concurrency", 5, "QUEUE_CONCURRENCY")
	f.StringVar(&cfg.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/softprohub_bench?sslmode=disable", "Postgres (created if missing; the run uses fresh schemas)")
	f.StringVar(&cfg.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	f.IntVar(&cfg.rate, "rate", 500, "webhooks/s of the latency phase (0 skips it)")
	f.DurationVar(&cfg.latencyFor, "latency-duration", 20*time.Second, "length of the latency phase")
	f.Uint64Var(&cfg.seed, "seed", 1, "generator seed")
	f.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the drain phase to this file")
	return cmd
}

// benchSchemaURL returns base with search_path set to schema.
func benchSchemaURL(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

var errServiceStopped = errors.New("service stopped")

// waitProjected waits until the live projectors' checkpoints on the event
// topics add up to want records, that is until every record of a fresh log
// is applied: a checkpoint advances in the transaction that writes its
// records' rows. Checkpoints are a few dozen rows; counting the audit rows
// instead would scan a growing table several times a second, taking CPU
// and buffer cache from the projectors being measured.
func waitProjected(ctx context.Context, pool *pgxpool.Pool, want int64, stopped <-chan struct{}) error {
	for {
		var applied int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM projection_checkpoints WHERE topic = ANY($1)`,
			domain.EventTopics).Scan(&applied); err != nil {
			return err
		}
		if applied >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errServiceStopped
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkAudit fails unless the audit holds want final rows.
func checkAudit(ctx context.Context, pool *pgxpool.Pool, want int64) error {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE status IN ('COMPLETED','SKIPPED','FAILED')`).Scan(&n); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("the checkpoints reached the end of the log but the audit holds %d final rows, want %d", n, want)
	}
	return nil
}

// benchIntegration names the i-th integration of a benchmark run. The names
// depend on the seed alone, so the same seed spreads the integrations over
// the partitions the same way in every run (each run has a broker and a
// schema of its own, so names never collide); with a run-unique name the
// spread, and with it the drain rate, would change from run to run.
func benchIntegration(seed uint64, i int) string {
	return fmt.Sprintf("office-%d-%03d", seed, i)
}

// logSkew prints, for the topic with the most records, how its records
// spread over its partitions: a partition's records apply one at a time, so
// the busiest partition bounds how fast a backlog drains.
func logSkew(ctx context.Context, brokers []string, logf func(string, ...any)) error {
	ends, err := kafka.EndOffsets(ctx, brokers, domain.EventTopics...)
	if err != nil {
		return err
	}
	var topic string
	var all int64
	for t := range ends {
		if n := ends.Total(t); n > ends.Total(topic) {
			topic = t
		}
		all += ends.Total(t)
	}
	if topic == "" {
		return nil
	}
	var busiest int64
	for _, n := range ends[topic] {
		busiest = max(busiest, n)
	}
	mean := float64(ends.Total(topic)) / float64(len(ends[topic]))
	logf("busiest topic %s: %d of %d records; its busiest partition holds %d (%.2fx the mean of its %d partitions)",
		topic, ends.Total(topic), all, busiest, float64(busiest)/mean, len(ends[topic]))
	return nil
}

// benchEnvelopes generates n envelopes over the integrations, every family
// represented, in a realistic type mix.
func benchEnvelopes(n, integrations int, seed uint64, prefix string) ([]domain.Envelope, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	now := time.Now().UTC()
	out := make([]domain.Envelope, n)
	for i := range n {
		typ := pickType(rng)
		ts := now.Add(time.Duration(i-n) * time.Millisecond)
		eid := fmt.Sprintf("evt_%s_%d", prefix, i)
		body, err := makeBody(rng, typ, eid, ts)
		if err != nil {
			return nil, err
		}
		out[i] = domain.Envelope{
			Schema: domain.SchemaV1, EventID: eid, IntegrationID: benchIntegration(seed, i%integrations),
			Type: typ, OccurredAt: ts.Truncate(time.Millisecond), ReceivedAt: ts, Source: domain.SourceWebhook,
			Priority: typ.Priority(), SignatureScheme: domain.SchemeSoftPro, Payload: body,
		}
	}
	return out, nil
}

func runBenchProject(ctx context.Context, cfg benchProjectConfig, out io.Writer) error {
	nonce := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	logf("bench-project: %d events over %d integrations, %d partitions per topic, QUEUE_CONCURRENCY=%d, GOMAXPROCS=%d",
		cfg.events, cfg.integrations, cfg.partitions, cfg.concurrency, runtime.GOMAXPROCS(0))

	dataDir, err := os.MkdirTemp("", "softprohub-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	broker, err := kafka.StartBroker(kafka.BrokerConfig{DataDir: dataDir + "/kafka", Partitions: int32(cfg.partitions)})
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := broker.Addrs()
	if _, err := kafka.EnsureTopics(ctx, brokers, domain.AllTopics, kafka.TopicSpec{Partitions: int32(cfg.partitions), Replication: -1}); err != nil {
		return err
	}

	// 1. The backlog.
	envs, err := benchEnvelopes(cfg.events, cfg.integrations, cfg.seed, "bench"+nonce)
	if err != nil {
		return err
	}
	prod, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers, DeliveryTimeout: time.Minute})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := appendAll(ctx, prod, envs); err != nil {
		prod.Close()
		return err
	}
	prod.Close()
	logf("backlog appended: %d events in %v (%.0f/s)", len(envs), time.Since(start).Round(time.Millisecond), float64(len(envs))/time.Since(start).Seconds())
	if err := logSkew(ctx, brokers, logf); err != nil {
		return err
	}

	// 2. Drain it with the live projectors.
	schema := "bench_" + nonce
	dbURL, err := benchSchemaURL(cfg.databaseURL, schema)
	if err != nil {
		return err
	}
	acfg := app.DefaultConfig()
	acfg.DatabaseURL, acfg.RedisURL, acfg.KafkaBrokers = dbURL, cfg.redisURL, brokers
	acfg.KafkaPartitions, acfg.QueueConcurrency = cfg.partitions, cfg.concurrency
	acfg.HTTPAddr, acfg.DataDir, acfg.LogLevel = "127.0.0.1:0", dataDir, "error"
	acfg.JWTSecret, acfg.SecretsKey = "bench-"+nonce, "bench-key-"+nonce
	acfg.IngestRateLimit = 1_000_000
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(ctx, acfg, app.Options{Dev: true, Logger: quiet})
	if err != nil {
		return err
	}
	defer a.Close()
	defer dropBenchSchema(cfg.databaseURL, schema)
	pool := a.Pool()
	if err := a.Listen(); err != nil {
		return err
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	var runErr error
	start = time.Now()
	go func() { runErr = a.Run(runCtx); close(ran) }()
	stopService := sync.OnceValue(func() error { stop(); <-ran; return runErr })
	defer stopService()

	if err := waitProjected(ctx, pool, int64(cfg.events), ran); err != nil {
		if errors.Is(err, errServiceStopped) {
			return fmt.Errorf("service stopped: %v", runErr)
		}
		return err
	}
	drain := time.Since(start)
	if cfg.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err := checkAudit(ctx, pool, int64(cfg.events)); err != nil {
		return err
	}
	liveRate := float64(cfg.events) / drain.Seconds()
	logf("live projection: %d events visible in %v: %.0f events/s (goal >= 3000)", cfg.events, drain.Round(time.Millisecond), liveRate)
	if sum, count, err := scrapeSumCount("http://"+a.Addr()+"/metrics", "softprohub_projection_batch_size"); err == nil && count > 0 {
		logf("  %d projection transactions, %.1f events each on average", int64(count), sum/count)
	}
	if sum, count, err := scrapeSumCount("http://"+a.Addr()+"/metrics", "softprohub_projection_transaction_seconds"); err == nil && count > 0 {
		logf("  %.1f ms per transaction on average, load to commit", 1000*sum/count)
	}
	var failed int64
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE status='FAILED'`).Scan(&failed)
	if failed > 0 {
		logf("  note: %d events FAILED", failed)
	}

	// 3. End-to-end latency under steady ingest.
	var lat e2eLatency
	if cfg.rate > 0 {
		lat, err = benchE2E(ctx, a, pool, cfg, nonce)
		if err != nil {
			return err
		}
		logf("end-to-end at %d webhooks/s for %v: %d events, 200 OK -> row visible p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms (goal p95 < 250 ms)",
			cfg.rate, cfg.latencyFor, lat.n, lat.p50, lat.p95, lat.p99, lat.max)
	}
	if err := stopService(); err != nil {
		return err
	}

	// 4. Ceiling: the same rows through COPY.
	copyRate, _, err := benchCopyCeiling(ctx, cfg.databaseURL, "bench_copy_"+nonce, envs, 1)
	if err != nil {
		return err
	}
	logf("COPY ceiling: %.0f events/s (audit row + entity row each); live / ceiling = %.1f%%", copyRate, 100*liveRate/copyRate)
	logf(`BENCH {"liveEventsPerSec":%.0f,"e2eP50Ms":%.1f,"e2eP95Ms":%.1f,"e2eP99Ms":%.1f,"copyEventsPerSec":%.0f,"ratio":%.4f}`,
		liveRate, lat.p50, lat.p95, lat.p99, copyRate, liveRate/copyRate)
	return nil
}

// appendAll appends envs with many appends in flight.
func appendAll(ctx context.Context, p *kafka.Producer, envs []domain.Envelope) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(envs)) {
					return
				}
				if _, err := p.Append(ctx, envs[i]); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

type e2eLatency struct {
	n                  int
	p50, p95, p99, max float64
}

func summarize(ms []float64) e2eLatency {
	if len(ms) == 0 {
		return e2eLatency{}
	}
	slices.Sort(ms)
	q := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	return e2eLatency{n: len(ms), p50: q(0.50), p95: q(0.95), p99: q(0.99), max: ms[len(ms)-1]}
}

// benchE2E sends signed webhooks at cfg.rate through the service's HTTP
// endpoint and measures, per event, from its 200 OK to the moment its
// audit row is visible (polled every 5 ms).
func benchE2E(ctx context.Context, a *app.App, pool *pgxpool.Pool, cfg benchProjectConfig, nonce string) (e2eLatency, error) {
	const integrations = 10
	ids := make([]string, integrations)
	for i := range ids {
		ids[i] = fmt.Sprintf("lat%s-%d", nonce, i)
		in := domain.Integration{ID: ids[i], OrganizationID: "bench", Active: true, WebhookEnabled: true,
			SignatureScheme: domain.SchemeSoftPro, SyncFrequency: 15, SyncTypes: []string{}, SyncStatus: "IDLE",
			RateLimit: 100, IngestRateLimit: 1_000_000}
		if _, err := a.Store().Create(ctx, in, "secret-"+ids[i]); err != nil {
			return e2eLatency{}, err
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	rng := rand.New(rand.NewPCG(cfg.seed, 7))
	total := int(float64(cfg.rate) * cfg.latencyFor.Seconds())
	okAt := make([]time.Time, total)
	eventIDs := make([]string, total)
	var sendErrs atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	interval := time.Second / time.Duration(cfg.rate)
	for k := range total {
		intended := begin.Add(time.Duration(k) * interval)
		time.Sleep(time.Until(intended))
		typ := pickType(rng)
		eid := fmt.Sprintf("lat_%s_%d", nonce, k)
		eventIDs[k] = eid
		body, err := makeBody(rng, typ, eid, time.Now())
		if err != nil {
			return e2eLatency{}, err
		}
		in := ids[k%integrations]
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.Addr()+"/api/webhooks/softpro/"+in, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Softpro-Signature", ingest.SignSoftPro([]byte("secret-"+in), body))
			resp, err := client.Do(req)
			if err != nil {
				sendErrs.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				sendErrs.Add(1)
				return
			}
			okAt[k] = time.Now()
		}()
	}
	wg.Wait()
	if n := sendErrs.Load(); n > 0 {
		return e2eLatency{}, fmt.Errorf("latency phase: %d webhooks not accepted", n)
	}
	// processed_at is stamped inside the projecting transaction; the row is
	// visible when that transaction commits, a millisecond or so later.
	deadline := time.Now().Add(60 * time.Second)
	visibleAt := map[string]time.Time{}
	for len(visibleAt) < total && time.Now().Before(deadline) {
		rows, err := pool.Query(ctx, `SELECT event_id, processed_at FROM webhook_events WHERE integration_id = ANY($1) AND processed_at IS NOT NULL`, ids)
		if err != nil {
			return e2eLatency{}, err
		}
		for rows.Next() {
			var eid string
			var at time.Time
			if err := rows.Scan(&eid, &at); err != nil {
				rows.Close()
				return e2eLatency{}, err
			}
			visibleAt[eid] = at
		}
		rows.Close()
		if len(visibleAt) < total {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(visibleAt) < total {
		return e2eLatency{}, fmt.Errorf("latency phase: only %d of %d events projected within 60 s", len(visibleAt), total)
	}
	ms := make([]float64, 0, total)
	for k, eid := range eventIDs {
		ms = append(ms, max(0, float64(visibleAt[eid].Sub(okAt[k]).Microseconds())/1000))
	}
	return summarize(ms), nil
}

// scrapeSumCount adds up a histogram's _sum and _count series over every
// label set from a Prometheus text endpoint.
func scrapeSumCount(url, name string) (sum, count float64, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		var v float64
		switch {
		case strings.HasPrefix(line, name+"_sum"):
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		case strings.HasPrefix(line, name+"_count"):
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				count += v
			}
		}
	}
	return sum, count, nil
}

func dropBenchSchema(databaseURL, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}

// benchCopyCeiling loads, for every event of envs, its audit row and its
// entity row into a fresh migrated schema with pgx CopyFrom, and returns
// the events/s and the machine's CPU use while it did. With conns > 1 the
// events are split into that many runs of consecutive events, each copied
// on a connection of its own at the same time.
func benchCopyCeiling(ctx context.Context, base, schema string, envs []domain.Envelope, conns int) (float64, cpuUse, error) {
	dbURL, err := benchSchemaURL(base, schema)
	if err != nil {
		return 0, cpuUse{}, err
	}
	pool, err := postgres.Open(ctx, dbURL, true)
	if err != nil {
		return 0, cpuUse{}, err
	}
	defer pool.Close()
	defer dropBenchSchema(base, schema)
	if err := postgres.Migrate(ctx, pool); err != nil {
		return 0, cpuUse{}, err
	}
	// Entity ids repeat across events, so entity rows go into copies of the
	// tables without their keys: every event's row is a new row, which is
	// the cheapest a projection could ever write them.
	tables := map[domain.Kind]string{domain.KindTransaction: "transactions", domain.KindContact: "contacts", domain.KindDocument: "documents", domain.KindTask: "tasks"}
	for _, t := range tables {
		if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLE ceiling_%s (LIKE %s INCLUDING DEFAULTS)", t, t)); err != nil {
			return 0, cpuUse{}, err
		}
	}
	type share struct {
		audit    [][]any
		entities map[string][][]any
	}
	shares := make([]share, conns)
	for k := range shares {
		part := envs[k*len(envs)/conns : (k+1)*len(envs)/conns]
		sh := share{audit: make([][]any, 0, len(part)), entities: map[string][][]any{}}
		for _, e := range part {
			c, ok, err := domain.ChangeOf(e)
			if err != nil {
				return 0, cpuUse{}, err
			}
			sh.audit = append(sh.audit, []any{e.IntegrationID, e.EventID, string(e.Type), string(e.Payload), "COMPLETED", e.ReceivedAt,
				e.ReceivedAt, time.Now(), int32(1), e.OccurredAt, true, string(e.Source), e.Type.Topic(), int32(0), int64(0), e.ReceivedAt})
			if ok {
				t := tables[c.Key.Kind]
				sh.entities[t] = append(sh.entities[t], []any{e.IntegrationID, c.Key.ID, c.At, c.At, e.EventID, string(c.Raw)})
			}
		}
		shares[k] = sh
	}
	// Connections are opened before the clock starts.
	held := make([]*pgxpool.Conn, conns)
	for k := range held {
		if held[k], err = pool.Acquire(ctx); err != nil {
			return 0, cpuUse{}, err
		}
		defer held[k].Release()
	}
	start := time.Now()
	cpuBefore, _ := readCPUTimes()
	errs := make(chan error, conns)
	for k, sh := range shares {
		go func() {
			conn := held[k]
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{"webhook_events"},
				[]string{"integration_id", "event_id", "event_type", "payload", "status", "received_at", "processing_started_at", "processed_at",
					"processing_time_ms", "occurred_at", "applied", "source", "topic", "partition", "offset", "appended_at"},
				pgx.CopyFromRows(sh.audit)); err != nil {
				errs <- fmt.Errorf("copy audit: %w", err)
				return
			}
			for t, rows := range sh.entities {
				if _, err := conn.CopyFrom(ctx, pgx.Identifier{"ceiling_" + t},
					[]string{"integration_id", "id", "softpro_created_at", "softpro_updated_at", "last_event_id", "payload"},
					pgx.CopyFromRows(rows)); err != nil {
					errs <- fmt.Errorf("copy %s: %w", t, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range shares {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return 0, cpuUse{}, err
	}
	rate := float64(len(envs)) / time.Since(start).Seconds()
	cpuAfter, _ := readCPUTimes()
	return rate, cpuBefore.until(cpuAfter), nil
}

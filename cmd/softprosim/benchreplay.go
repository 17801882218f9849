package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

type benchReplayConfig struct {
	events       int
	liveEvents   int
	copyEvents   int
	integrations int
	partitions   int
	topicParts   map[string]int
	batch        int
	workers      int
	databaseURL  string
	redisURL     string
	seed         uint64
	cpuProfile   string
}

func newBenchReplayCmd() *cobra.Command {
	cfg := benchReplayConfig{}
	cmd := &cobra.Command{
		Use:   "bench-replay",
		Short: "Benchmark a full rebuild from the log against the live path and a COPY ceiling",
		Long: "Appends --events events over --integrations integrations to an embedded broker. The first\n" +
			"--live-events are drained by the live projectors (their events/s is the live path's); then the\n" +
			"whole log is rebuilt into a fresh schema and swapped in, printing events/s, peak heap and\n" +
			"total time; then, as a ceiling, --copy-events events' rows load with pgx CopyFrom. The log is\n" +
			"generated and appended in chunks, so the benchmark's own memory stays small.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchReplay(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.events, "events", 1_000_000, "events in the log")
	f.IntVar(&cfg.liveEvents, "live-events", 100_000, "events drained by the live projectors first")
	f.IntVar(&cfg.copyEvents, "copy-events", 200_000, "events of the COPY ceiling")
	f.IntVar(&cfg.integrations, "integrations", 100, "integrations the events spread over")
	f.IntVar(&cfg.partitions, "partitions", app.DefaultConfig().KafkaPartitions, "partitions per topic (KAFKA_PARTITIONS's default)")
	f.StringToIntVar(&cfg.topicParts, "topic-partitions", nil, "partitions of some topics instead of --partitions, as topic=n,... (a rebuild of topics with unequal counts reads every partition in one merged stream)")
	f.IntVar(&cfg.batch, "batch", projections.DefaultRebuildBatch, "records per rebuild transaction")
	f.IntVar(&cfg.workers, "workers", projections.DefaultRebuildWorkers, "rebuild transactions in flight")
	f.StringVar(&cfg.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/softprohub_bench?sslmode=disable", "Postgres (created if missing; the run uses fresh schemas)")
	f.StringVar(&cfg.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	f.Uint64Var(&cfg.seed, "seed", 1, "generator seed")
	f.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the rebuild to this file")
	return cmd
}

// appendChunked generates events [from, to) of the log and appends them in
// chunks of 50,000.
func appendChunked(ctx context.Context, p *kafka.Producer, rng *rand.Rand, seed uint64, from, to, total, integrations int, prefix string, base time.Time) error {
	const chunk = 50_000
	for lo := from; lo < to; lo += chunk {
		hi := min(lo+chunk, to)
		envs := make([]domain.Envelope, 0, hi-lo)
		for i := lo; i < hi; i++ {
			typ := pickType(rng)
			ts := base.Add(time.Duration(i-total) * time.Millisecond)
			eid := fmt.Sprintf("evt_%s_%d", prefix, i)
			body, err := makeBody(rng, typ, eid, ts)
			if err != nil {
				return err
			}
			envs = append(envs, domain.Envelope{
				Schema: domain.SchemaV1, EventID: eid, IntegrationID: benchIntegration(seed, i%integrations),
				Type: typ, OccurredAt: ts.Truncate(time.Millisecond), ReceivedAt: ts, Source: domain.SourceWebhook,
				Priority: typ.Priority(), SignatureScheme: domain.SchemeSoftPro, Payload: body,
			})
		}
		if err := appendAll(ctx, p, envs); err != nil {
			return err
		}
	}
	return nil
}

func runBenchReplay(ctx context.Context, cfg benchReplayConfig, out io.Writer) error {
	total := time.Now()
	nonce := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	logf("bench-replay: %d events over %d integrations, %d partitions per topic, batch %d, %d workers, GOMAXPROCS=%d",
		cfg.events, cfg.integrations, cfg.partitions, cfg.batch, cfg.workers, runtime.GOMAXPROCS(0))
	cfg.liveEvents = min(cfg.liveEvents, cfg.events)

	dataDir, err := os.MkdirTemp("", "softprohub-bench-replay-")
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
	var even []string
	for _, t := range domain.AllTopics {
		if n, ok := cfg.topicParts[t]; ok {
			if _, err := kafka.EnsureTopics(ctx, brokers, []string{t}, kafka.TopicSpec{Partitions: int32(n), Replication: -1}); err != nil {
				return err
			}
			logf("topic %s: %d partitions", t, n)
			continue
		}
		even = append(even, t)
	}
	if len(even)+len(cfg.topicParts) != len(domain.AllTopics) {
		return fmt.Errorf("--topic-partitions: unknown topic in %v (topics: %v)", cfg.topicParts, domain.AllTopics)
	}
	if _, err := kafka.EnsureTopics(ctx, brokers, even, kafka.TopicSpec{Partitions: int32(cfg.partitions), Replication: -1}); err != nil {
		return err
	}
	prod, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers, DeliveryTimeout: time.Minute})
	if err != nil {
		return err
	}
	defer prod.Close()
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	prefix := "rb" + nonce
	base := time.Now().UTC()

	// 1. The live path drains the first part of the log.
	start := time.Now()
	if err := appendChunked(ctx, prod, rng, cfg.seed, 0, cfg.liveEvents, cfg.events, cfg.integrations, prefix, base); err != nil {
		return err
	}
	logf("appended %d events for the live path in %v", cfg.liveEvents, time.Since(start).Round(time.Millisecond))
	schema := "bench_replay_" + nonce
	dbURL, err := benchSchemaURL(cfg.databaseURL, schema)
	if err != nil {
		return err
	}
	defer dropBenchSchema(cfg.databaseURL, schema)
	acfg := app.DefaultConfig()
	acfg.DatabaseURL, acfg.RedisURL, acfg.KafkaBrokers = dbURL, cfg.redisURL, brokers
	acfg.KafkaPartitions = cfg.partitions
	acfg.HTTPAddr, acfg.DataDir, acfg.LogLevel = "127.0.0.1:0", dataDir, "error"
	acfg.JWTSecret, acfg.SecretsKey = "bench-"+nonce, "bench-key-"+nonce
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(ctx, acfg, app.Options{Dev: true, Logger: quiet, Roles: app.Roles{Project: true}})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan struct{})
	var runErr error
	start = time.Now()
	liveCPUBefore, _ := readCPUTimes()
	go func() { runErr = a.Run(runCtx); close(ran) }()
	if err := waitProjected(ctx, a.Pool(), int64(cfg.liveEvents), ran); err != nil {
		stop()
		a.Close()
		if errors.Is(err, errServiceStopped) {
			return fmt.Errorf("service stopped: %v", runErr)
		}
		return err
	}
	liveTook := time.Since(start)
	liveRate := float64(cfg.liveEvents) / liveTook.Seconds()
	liveCPUAfter, _ := readCPUTimes()
	liveCPU := liveCPUBefore.until(liveCPUAfter)
	if err := checkAudit(ctx, a.Pool(), int64(cfg.liveEvents)); err != nil {
		stop()
		a.Close()
		return err
	}
	stop()
	<-ran
	a.Close()
	logf("live path: %d events in %v: %.0f events/s", cfg.liveEvents, liveTook.Round(time.Millisecond), liveRate)
	logf("live path: %s", liveCPU.perEvent(int64(cfg.liveEvents)))

	// 2. The rest of the log.
	start = time.Now()
	if err := appendChunked(ctx, prod, rng, cfg.seed, cfg.liveEvents, cfg.events, cfg.events, cfg.integrations, prefix, base); err != nil {
		return err
	}
	logf("appended the other %d events in %v", cfg.events-cfg.liveEvents, time.Since(start).Round(time.Millisecond))

	// 3. Rebuild the whole log into a fresh schema and swap it in.
	pool, err := postgres.Open(ctx, dbURL, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	var heapAtHalf atomic.Uint64
	heapBefore, peakHeap, stopSampling := sampleHeap(ctx)
	lastLine := time.Time{}
	var lastState projections.RebuildState
	tools, err := app.NewRecoveryTools(ctx, pool, brokers, prod, app.RecoveryOptions{
		BatchSize: cfg.batch, Workers: cfg.workers,
		OnProgress: func(r projections.RebuildRun) {
			if heapAtHalf.Load() == 0 && r.Progress.Applied >= int64(cfg.events/2) {
				heapAtHalf.Store(max(peakHeap.Load(), 1))
			}
			if r.State != lastState {
				// Each phase's start, to see where the time goes.
				logf("  %-11s from %.1fs", r.State, time.Since(start).Seconds())
				lastState = r.State
			}
			if time.Since(lastLine) >= 5*time.Second {
				lastLine = time.Now()
				logf("  %-11s %9d applied  %7.0f events/s  %9d offsets left  ETA %v", r.State, r.Progress.Applied,
					r.Progress.Rate, r.Progress.Left, r.Progress.ETA.Round(time.Second))
			}
		},
	})
	if err != nil {
		stopSampling()
		return err
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			stopSampling()
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			stopSampling()
			return err
		}
	}
	start = time.Now()
	cpuBefore, cpuOK := readCPUTimes()
	run, err := tools.Rebuilder.Rebuild(ctx)
	cpuAfter, cpuOK2 := readCPUTimes()
	stopSampling()
	if cfg.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	rebuildRate := float64(run.Progress.Applied) / took.Seconds()
	var rows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events`).Scan(&rows); err != nil {
		return err
	}
	if rows != int64(cfg.events) {
		return fmt.Errorf("rebuilt audit holds %d events, want %d", rows, cfg.events)
	}
	peakMB, halfMB := mibOver(heapBefore, peakHeap.Load()), mibOver(heapBefore, heapAtHalf.Load())
	logf("rebuild: %d events in %v: %.0f events/s (goal >= 25000); live paused %v; peak heap over baseline %.0f MiB (%.0f MiB by half-way)",
		run.Progress.Applied, took.Round(time.Millisecond), rebuildRate, run.Paused.Round(time.Millisecond), peakMB, halfMB)
	logf("rebuild / live = %.1fx (goal >= 8x)", rebuildRate/liveRate)
	var rebuildCPU cpuUse
	if cpuOK && cpuOK2 {
		rebuildCPU = cpuBefore.until(cpuAfter)
		logf("rebuild: %s", rebuildCPU.perEvent(run.Progress.Applied))
	}

	// 4. Validate one integration against the rebuilt read models: it
	// must agree with the log everywhere (score 100). Its time and heap
	// are those of folding that integration's share of the log.
	integration := benchIntegration(cfg.seed, 0)
	heapBefore, peakHeap, stopSampling = sampleHeap(ctx)
	start = time.Now()
	rep, err := tools.Recovery.Validate(ctx, integration)
	validateTook := time.Since(start)
	stopSampling()
	if err != nil {
		return err
	}
	if rep.Score != 100 {
		return fmt.Errorf("validate %s after the rebuild: score %d, %d issues, first %+v", integration, rep.Score, len(rep.Issues), rep.Issues[0])
	}
	validateRate := float64(rep.Events) / validateTook.Seconds()
	logf("validate %s: %d events, %d entities, %d audit buckets in %v: %.0f events/s, score %d; peak heap over baseline %.0f MiB",
		integration, rep.Events, rep.Entities, rep.AuditBuckets, validateTook.Round(time.Millisecond), validateRate, rep.Score, mibOver(heapBefore, peakHeap.Load()))

	// 5. Ceiling: the same kind of rows through COPY.
	envs, err := benchEnvelopes(cfg.copyEvents, cfg.integrations, cfg.seed+1, "cp"+nonce)
	if err != nil {
		return err
	}
	copyRate, copyCPU, err := benchCopyCeiling(ctx, cfg.databaseURL, "bench_replay_copy_"+nonce, envs, 1)
	if err != nil {
		return err
	}
	logf("COPY ceiling: %.0f events/s over %d events; rebuild / ceiling = %.1f%% (goal >= 30%%)", copyRate, cfg.copyEvents, 100*rebuildRate/copyRate)
	if cpuOK && cpuOK2 {
		logf("COPY ceiling: %s", copyCPU.perEvent(int64(cfg.copyEvents)))
	}
	logf("COPY ceiling / live = %.1fx", copyRate/liveRate)
	// The same rows again, split over one connection per core: storing
	// them alone, with the whole machine, and no log to read.
	conns := runtime.NumCPU()
	wideRate, wideCPU, err := benchCopyCeiling(ctx, cfg.databaseURL, "bench_replay_copy_wide_"+nonce, envs, conns)
	if err != nil {
		return err
	}
	logf("COPY on %d connections at once: %.0f events/s = %.1fx live; rebuild / this = %.1f%%", conns, wideRate, wideRate/liveRate, 100*rebuildRate/wideRate)
	if cpuOK && cpuOK2 {
		logf("COPY on %d connections: %s", conns, wideCPU.perEvent(int64(cfg.copyEvents)))
	}

	// 6. Floor: reading the whole log, with nothing else.
	read, readCPU, err := benchLogRead(ctx, brokers, cfg.batch)
	if err != nil {
		return err
	}
	if read.events != int64(cfg.events) {
		return fmt.Errorf("log read: %d events, want %d", read.events, cfg.events)
	}
	readRate := float64(read.events) / read.took.Seconds()
	logf("log read: %d events in %v: %.0f events/s", read.events, read.took.Round(time.Millisecond), readRate)
	if cpuOK && cpuOK2 {
		logf("log read: %s", readCPU.perEvent(read.events))
		// Any rebuild reads each event and stores its rows at least once:
		// the two floors' machine CPU per event bounds the rate the cores
		// can rebuild at, however the work is spread over them.
		cores := float64(runtime.NumCPU())
		reading, storing := readCPU.micros(read.events), copyCPU.micros(int64(cfg.copyEvents))
		floor := reading + storing
		logf("bound: reading (%.0f µs) and storing (%.0f µs) each event need %.0f µs of machine CPU: at most %.0f events/s on %.0f cores = %.1fx live",
			reading, storing, floor, cores*1e6/floor, cores, cores*1e6/floor/liveRate)
	}
	logf("total time %v", time.Since(total).Round(time.Second))
	logf(`BENCH {"rebuildEventsPerSec":%.0f,"liveEventsPerSec":%.0f,"copyEventsPerSec":%.0f,"rebuildOverLive":%.2f,"rebuildOverCopy":%.4f,"peakHeapMiB":%.0f,"rebuildSeconds":%.1f,"pausedMs":%d,"rebuildCPUMicrosPerEvent":%.0f,"rebuildStolenPct":%.0f,"liveCPUMicrosPerEvent":%.0f,"copyCPUMicrosPerEvent":%.0f,"logReadEventsPerSec":%.0f,"logReadCPUMicrosPerEvent":%.1f,"copyWideEventsPerSec":%.0f,"copyWideOverLive":%.2f,"validateSeconds":%.2f,"validateEventsPerSec":%.0f}`,
		rebuildRate, liveRate, copyRate, rebuildRate/liveRate, rebuildRate/copyRate, peakMB, took.Seconds(), run.Paused.Milliseconds(),
		rebuildCPU.micros(run.Progress.Applied), 100*rebuildCPU.stolen, liveCPU.micros(int64(cfg.liveEvents)), copyCPU.micros(int64(cfg.copyEvents)),
		readRate, readCPU.micros(read.events), wideRate, wideRate/liveRate, validateTook.Seconds(), validateRate)
	return nil
}

// sampleHeap garbage-collects, then records the largest Go heap seen every
// 100 ms until stop is called. It returns the heap it started from.
func sampleHeap(ctx context.Context) (before uint64, peak *atomic.Uint64, stop func()) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	peak = new(atomic.Uint64)
	peak.Store(ms.HeapAlloc)
	sampling, stop := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampling.Done():
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	}()
	return ms.HeapAlloc, peak, stop
}

// mibOver is the heap peak over before, in MiB.
func mibOver(before, peak uint64) float64 {
	return float64(peak-min(before, peak)) / (1 << 20)
}

type logRead struct {
	events int64
	took   time.Duration
}

// benchLogRead scans every event of the log as a rebuild does (decoding
// each envelope) and applies none, returning the count, the time and the
// machine's CPU use.
func benchLogRead(ctx context.Context, brokers []string, batch int) (logRead, cpuUse, error) {
	r := kafka.NewReplayReader(brokers)
	b, err := r.Bounds(ctx, domain.EventTopics, time.Time{}, time.Time{})
	if err != nil {
		return logRead{}, cpuUse{}, err
	}
	var read logRead
	start := time.Now()
	before, _ := readCPUTimes()
	err = r.Scan(ctx, projections.ScanRequest{Bounds: b, BatchSize: batch}, func(recs []projections.ScannedRecord) error {
		for _, rec := range recs {
			if rec.Err != nil {
				return rec.Err
			}
		}
		read.events += int64(len(recs))
		return nil
	})
	read.took = time.Since(start)
	after, _ := readCPUTimes()
	return read, before.until(after), err
}

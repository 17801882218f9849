package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/handlers/schedule"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/redis"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// Roles selects which parts of the system a process runs.
type Roles struct {
	Ingest, API, Project, Schedule bool
}

// AllRoles runs everything in one process.
var AllRoles = Roles{Ingest: true, API: true, Project: true, Schedule: true}

// ParseRoles reads a comma-separated role list.
func ParseRoles(s string) (Roles, error) {
	var r Roles
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "ingest":
			r.Ingest = true
		case "api":
			r.API = true
		case "project":
			r.Project = true
		case "schedule":
			r.Schedule = true
		case "":
		default:
			return r, fmt.Errorf("unknown role %q (want ingest, api, project, schedule)", name)
		}
	}
	if r == (Roles{}) {
		return r, errors.New("no role given")
	}
	return r, nil
}

// Options are the choices made on the command line rather than in the
// environment.
type Options struct {
	Dev   bool
	Roles Roles
	// Logger defaults to NewLogger(cfg.LogLevel, Dev).
	Logger *slog.Logger
	// Registry defaults to a new registry with the Go and process collectors.
	Registry *prometheus.Registry
}

// App is a wired softprohub process. Build it with New, run it with Run.
type App struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	broker    *kafka.Broker // nil unless embedded
	pool      *pgxpool.Pool
	rdb       *goredis.Client
	producer  *kafka.Producer
	admin     *kafka.Admin
	store     *postgres.IntegrationStore
	cache     *ingest.Cache
	receiver  *ingest.Receiver
	handler   http.Handler
	registry  *prometheus.Registry
	listener  net.Listener
	router    *events.Router
	scheduler *schedule.Scheduler
	pauses    *events.Pauses
	closers   closers
	runnables []func(ctx context.Context) error
}

// New connects to (or starts) every dependency, creates topics, migrates
// the database and builds the handlers. It does not serve yet. A broker
// that does not answer does not fail it: Run waits for the broker.
func New(ctx context.Context, cfg Config, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.RequireSecrets(opts.Dev); err != nil {
		return nil, err
	}
	if opts.Roles == (Roles{}) {
		opts.Roles = AllRoles
	}
	if opts.Logger == nil {
		opts.Logger = NewLogger(cfg.LogLevel, opts.Dev)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a := &App{cfg: cfg, opts: opts, log: opts.Logger, registry: opts.Registry}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	if cfg.Embedded() {
		a.broker, err = kafka.StartBroker(kafka.BrokerConfig{
			DataDir: filepath.Join(cfg.DataDir, "kafka"), Port: cfg.KafkaEmbeddedPort,
			Partitions: int32(cfg.KafkaPartitions), Logger: a.log.With("component", "broker"),
		})
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		a.closers.add(a.broker.Close)
		a.log.Info("embedded kafka broker started", "addrs", a.broker.Addrs(), "dataDir", filepath.Join(cfg.DataDir, "kafka"))
	}
	brokers := a.Brokers()
	// A broker that does not answer yet is waited for in Run: ingest
	// answers 503 meanwhile, and the topics are created and the projectors
	// subscribe once it answers.
	topicsEnsured := true
	if err := a.ensureTopics(ctx); err != nil {
		a.log.Warn("kafka broker unreachable at start, waiting for it", "err", err)
		topicsEnsured = false
	}

	a.pool, err = OpenDatabase(ctx, cfg, opts.Dev)
	if err != nil {
		return nil, err
	}
	a.closers.add(a.pool.Close)
	a.pauses = events.NewPauses(postgres.NewRebuildRuns(a.pool), statusNames())

	a.rdb, err = newRedisClient(cfg)
	if err != nil {
		return nil, err
	}
	a.closers.add(func() { _ = a.rdb.Close() })

	box, err := secretbox.NewFromString(cfg.SecretsKey)
	if err != nil {
		return nil, fmt.Errorf("SECRETS_KEY: %w", err)
	}
	a.store = postgres.NewIntegrationStore(a.pool, box)
	a.cache = ingest.NewCache(a.store, 30*time.Second, 2*time.Second)
	a.runnables = append(a.runnables, func(ctx context.Context) error {
		return a.store.Listen(ctx, a.cache.Invalidate)
	})

	a.producer, err = kafka.NewProducer(kafka.ProducerConfig{
		Brokers: brokers, DeliveryTimeout: cfg.KafkaAppendTimeout, Logger: a.log.With("component", "producer"),
	})
	if err != nil {
		return nil, err
	}
	a.closers.add(a.producer.Close)
	if a.admin, err = kafka.NewAdmin(brokers); err != nil {
		return nil, err
	}
	a.closers.add(a.admin.Close)

	if opts.Roles.Project {
		if err := a.startProjections(); err != nil {
			return nil, err
		}
	} else if !topicsEnsured {
		a.runnables = append(a.runnables, a.awaitTopics)
	}

	if opts.Roles.Ingest {
		for _, w := range cfg.Warnings() {
			a.log.Warn(w)
		}
	}
	metrics := httpapi.NewMetrics(a.registry)
	gate := redis.NewGate(a.rdb)
	a.receiver, err = ingest.NewReceiver(ingest.Config{
		SignatureTTL:    time.Duration(cfg.WebhookSignatureTTL) * time.Second,
		DedupTTL:        time.Duration(cfg.WebhookDedupTTL) * time.Second,
		MaxBody:         cfg.WebhookMaxBody,
		IngestRateLimit: cfg.IngestRateLimit,
		AppendTimeout:   cfg.KafkaAppendTimeout,
	}, a.cache, gate, metrics.InstrumentAppender(a.producer))
	if err != nil {
		return nil, err
	}

	syncRoutes, err := a.wireSync()
	if err != nil {
		return nil, err
	}
	recoveryRoutes, err := a.wireRecovery(ctx)
	if err != nil {
		return nil, err
	}

	a.handler, err = httpapi.NewHandler(httpapi.Config{
		JWTSecret:              []byte(cfg.JWTSecret),
		SecretGrace:            cfg.WebhookSecretGrace,
		DefaultSyncFrequency:   cfg.SyncDefaultInterval,
		MinSyncInterval:        cfg.SyncMinInterval,
		DefaultRateLimit:       cfg.RateLimitDefault,
		DefaultIngestRateLimit: cfg.IngestRateLimit,
		WithoutWebhooks:        !opts.Roles.Ingest,
		WithoutAPI:             !opts.Roles.API,
	}, httpapi.Deps{
		Receiver:            a.receiver,
		Integrations:        a.store,
		OnIntegrationChange: a.cache.Invalidate,
		Checks: []httpapi.Check{
			{Name: "kafka", Critical: true, Probe: a.producer.Ping},
			{Name: "postgres", Critical: true, Probe: a.postgresProbe()},
			{Name: "redis", Critical: false, Probe: gate.Ping},
		},
		Queues:   a.topicReporter(),
		Metrics:  metrics,
		Gatherer: a.registry,
		Mount:    append(append(a.queryMounts(), syncRoutes), recoveryRoutes...),
		Logger:   a.log.With("component", "http"),
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// postgresProbe is the readiness probe of Postgres: a process that
// projects needs it to take writes, the others to answer.
func (a *App) postgresProbe() func(context.Context) error {
	if a.opts.Roles.Project {
		return postgres.Writable(a.pool)
	}
	return a.pool.Ping
}

// ensureTopics creates the topics that are missing; it fails while the
// broker does not answer.
func (a *App) ensureTopics(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	created, err := kafka.EnsureTopics(ctx, a.Brokers(), domain.AllTopics, kafka.TopicSpec{
		Partitions: int32(a.cfg.KafkaPartitions), Replication: int16(a.cfg.KafkaReplication),
	})
	if len(created) > 0 {
		a.log.Info("topics created", "topics", created, "partitions", a.cfg.KafkaPartitions)
	}
	return err
}

// awaitTopics ensures the topics once the broker answers, for a process
// without role project (whose router does so before it subscribes):
// after a failure it logs a warning and tries again after 1 s, doubling up
// to 30 s, until ctx ends.
func (a *App) awaitTopics(ctx context.Context) error {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		err := a.ensureTopics(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		a.log.Warn("kafka topics not ensured, will retry", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// Brokers are the Kafka bootstrap addresses in use.
func (a *App) Brokers() []string {
	if a.broker != nil {
		return a.broker.Addrs()
	}
	return a.cfg.Brokers()
}

// ProjectionsRunning is closed once the live projectors have subscribed to
// every topic, which waits for the broker to answer; it is nil when the
// process does not run role project.
func (a *App) ProjectionsRunning() <-chan struct{} {
	if a.router == nil {
		return nil
	}
	return a.router.Running()
}

// SchedulerStarted is closed once the scheduler has loaded the schedules
// and tried its start-up catch-up; it is nil when the process does not run
// role schedule.
func (a *App) SchedulerStarted() <-chan struct{} {
	if a.scheduler == nil {
		return nil
	}
	return a.scheduler.Started()
}

// Handler is the HTTP edge, for tests that serve it themselves.
func (a *App) Handler() http.Handler { return a.handler }

// Pool is the Postgres pool holding the read models.
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Store is the integration store.
func (a *App) Store() *postgres.IntegrationStore { return a.store }

// Listen binds HTTP_ADDR; Addr then reports the bound address.
func (a *App) Listen() error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.HTTPAddr, err)
	}
	a.listener = ln
	return nil
}

// Addr is the bound HTTP address, after Listen.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Run serves until ctx ends, then shuts down: in-flight requests finish
// (up to 15 s), background work stops, and the producer flushes in Close.
func (a *App) Run(ctx context.Context) error {
	if a.listener == nil {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	// A request, body included, must arrive within HTTP_READ_TIMEOUT: a
	// sender trickling its body does not hold a handler for longer.
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: min(10*time.Second, a.cfg.HTTPReadTimeout),
		ReadTimeout: a.cfg.HTTPReadTimeout, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		a.log.Info("http listening", "addr", a.Addr())
		if err := srv.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	for _, run := range a.runnables {
		g.Go(func() error {
			if err := run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

// Close releases everything New acquired, in reverse order.
func (a *App) Close() { a.closers.closeAll() }

// topicReporter reports each topic's figures for the health answer: events
// on the log, consumer lag of its projection, the live projector's messages
// in flight and in retry backoff, whether a rebuild holds it paused, and
// the events received in the last 24 hours that completed and failed (the
// stats route's default period, from the same read models).
func (a *App) topicReporter() topicReporter {
	r := topicReporter{offsets: a.admin, lag: groupLag{admin: a.admin, groups: projectionGroups()}, pauses: a.pauses,
		stats: postgres.NewQueryStore(a.pool), now: time.Now}
	if a.router != nil {
		r.gauges = a.router
	}
	return r
}

// healthStatsPeriod is the window of the health answer's completed and
// failed figures.
const healthStatsPeriod = 24 * time.Hour

type topicReporter struct {
	offsets interface {
		EndOffsets(ctx context.Context, topics ...string) (kafka.Offsets, error)
	}
	lag    httpapi.QueueLag
	stats  httpapi.StatsQueries
	gauges httpapi.QueueGauges
	pauses httpapi.QueuePauses
	now    func() time.Time
}

// Queues fails only when the log's end offsets cannot be read. A lag the
// broker does not give leaves waiting at 0 with LagUnavailable; pauses or
// counts the database does not give leave paused false with
// PausedUnavailable, completed and failed at 0 with CountsUnavailable:
// health stays answerable.
func (t topicReporter) Queues(ctx context.Context) ([]httpapi.QueueStat, error) {
	offs, err := t.offsets.EndOffsets(ctx, domain.AllTopics...)
	if err != nil {
		return nil, err
	}
	lag, lagErr := t.lag.Lag(ctx)
	paused, pausedErr := t.pauses.Paused(ctx)
	end := t.now().UTC()
	counts, countsErr := t.stats.Stats(ctx, projections.StatsFilter{Start: end.Add(-healthStatsPeriod), End: end})
	completed, failed := map[string]int64{}, map[string]int64{}
	for _, c := range counts {
		topic := c.EventType.Topic()
		// Skipped events (types that change no entity) count as completed.
		completed[topic] += c.Completed + c.Skipped
		failed[topic] += c.Failed
	}
	out := make([]httpapi.QueueStat, 0, len(domain.AllTopics))
	for _, topic := range domain.AllTopics {
		q := httpapi.QueueStat{QueueName: topic, Appended: offs.Total(topic), Waiting: max(lag[topic], 0),
			LagUnavailable: lagErr != nil, Completed: completed[topic], Failed: failed[topic], CountsUnavailable: countsErr != nil,
			Paused: paused[topic], PausedUnavailable: pausedErr != nil}
		if t.gauges != nil {
			q.Active, q.Delayed = t.gauges.Gauges(topic)
		}
		out = append(out, q)
	}
	return out, nil
}

// Migrate creates the database if missing and applies the migrations.
func Migrate(ctx context.Context, cfg Config) error {
	pool, err := OpenDatabase(ctx, cfg, true)
	if err != nil {
		return err
	}
	pool.Close()
	return nil
}

package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/handlers/schedule"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/redis"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/infra/softpro"
	"github.com/roisystems/softprohub/ingest"
)

// SyncSystem is scheduled sync wired from the configuration: the job, its
// stores, the scheduler status and the HTTP routes.
type SyncSystem struct {
	Syncer *ingest.Syncer
	Store  *postgres.SyncStore
	Locks  *redis.Locker
	Limits *redis.Limiter
	Status schedule.StatusReader
}

// NewSyncSystem wires the sync job over an open pool, Redis client and
// appender.
func NewSyncSystem(cfg Config, pool *pgxpool.Pool, rdb *goredis.Client, integrations *postgres.IntegrationStore, appender ingest.Appender) (*SyncSystem, error) {
	box, err := secretbox.NewFromString(cfg.SecretsKey)
	if err != nil {
		return nil, fmt.Errorf("SECRETS_KEY: %w", err)
	}
	store := postgres.NewSyncStore(pool, box)
	locks := redis.NewLocker(rdb)
	limits := redis.NewLimiter(rdb)
	window := time.Duration(cfg.RateLimitWindowMs) * time.Millisecond
	syncer, err := ingest.NewSyncer(ingest.SyncConfig{
		DefaultRateLimit: cfg.RateLimitDefault,
		RateWindow:       window,
	}, ingest.SyncDeps{
		Integrations: integrations, Connections: defaultBaseURL{store, cfg.SoftProAPIURL},
		API: softpro.New(softpro.Config{}), Limiter: limits, Locker: locks,
		Appender: appender, Runs: store, Watermarks: store,
	})
	if err != nil {
		return nil, err
	}
	return &SyncSystem{Syncer: syncer, Store: store, Locks: locks, Limits: limits,
		Status: schedule.StatusReader{Integrations: integrations, Runs: store, Locks: locks, Quotas: limits,
			MinInterval: cfg.SyncMinInterval, DefaultRateLimit: cfg.RateLimitDefault, RateWindow: window}}, nil
}

// defaultBaseURL fills a connection's missing base URL from SOFTPRO_API_URL,
// with "{integrationId}" replaced by the integration's id.
type defaultBaseURL struct {
	store *postgres.SyncStore
	url   string
}

func (d defaultBaseURL) Connection(ctx context.Context, id string) (domain.SoftProConnection, error) {
	c, err := d.store.Connection(ctx, id)
	if err == nil && c.BaseURL == "" {
		c.BaseURL = strings.ReplaceAll(d.url, "{integrationId}", id)
	}
	return c, err
}

// wireSync builds scheduled sync into the app: the admin routes always, the
// scheduler with role schedule.
func (a *App) wireSync() (func(chi.Router), error) {
	sys, err := NewSyncSystem(a.cfg, a.pool, a.rdb, a.store, a.producer)
	if err != nil {
		return nil, err
	}
	bg := &background{}
	a.runnables = append(a.runnables, bg.run)
	if a.opts.Roles.Schedule {
		stagger := a.cfg.SyncStagger
		if stagger == 0 {
			stagger = schedule.NoStagger
		}
		sched := schedule.New(schedule.Config{MinInterval: a.cfg.SyncMinInterval, Stagger: stagger}, sys.Syncer,
			a.store, a.store, a.log.With("component", "scheduler"))
		a.runnables = append(a.runnables, sched.Run)
		a.scheduler = sched
	}
	return httpapi.SyncRoutes(httpapi.SyncDeps{
		Starter: sys.Syncer, Status: sys.Status, Runs: sys.Store, Connections: sys.Store,
		Go: bg.Go, DefaultBaseURL: a.cfg.SoftProAPIURL, Logger: a.log.With("component", "sync"),
	}), nil
}

// background runs work started by HTTP requests under the process's
// lifetime: cancelled at shutdown, and waited for.
type background struct {
	mu      sync.Mutex
	ctx     context.Context
	wg      sync.WaitGroup
	pending []func(context.Context)
}

func (b *background) run(ctx context.Context) error {
	b.mu.Lock()
	b.ctx = ctx
	for _, fn := range b.pending {
		b.start(fn)
	}
	b.pending = nil
	b.mu.Unlock()
	<-ctx.Done()
	b.wg.Wait()
	return nil
}

// Go runs fn in the background; before the app runs it is held back.
func (b *background) Go(fn func(context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil {
		b.pending = append(b.pending, fn)
		return
	}
	b.start(fn)
}

func (b *background) start(fn func(context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
}

// SyncTool is the sync system for the CLI: no HTTP, no scheduler.
type SyncTool struct {
	*SyncSystem
	closers closers
}

// Close releases the tool's connections.
func (t *SyncTool) Close() { t.closers.closeAll() }

// OpenSyncTool connects to Postgres, Redis and the brokers named by cfg (a
// running serve's embedded broker when KAFKA_BROKERS is unset).
func OpenSyncTool(ctx context.Context, cfg Config, log *slog.Logger) (*SyncTool, error) {
	t := &SyncTool{}
	fail := func(err error) (*SyncTool, error) {
		t.Close()
		return nil, err
	}
	pool, err := OpenDatabase(ctx, cfg, false)
	if err != nil {
		return fail(err)
	}
	t.closers.add(pool.Close)
	rdb, err := newRedisClient(cfg)
	if err != nil {
		return fail(err)
	}
	t.closers.add(func() { _ = rdb.Close() })
	box, err := secretbox.NewFromString(cfg.SecretsKey)
	if err != nil {
		return fail(fmt.Errorf("SECRETS_KEY: %w", err))
	}
	producer, err := newProducer(cfg, log)
	if err != nil {
		return fail(err)
	}
	t.closers.add(producer.Close)
	t.SyncSystem, err = NewSyncSystem(cfg, pool, rdb, postgres.NewIntegrationStore(pool, box), producer)
	if err != nil {
		return fail(err)
	}
	return t, nil
}

func newProducer(cfg Config, log *slog.Logger) (*kafka.Producer, error) {
	return kafka.NewProducer(kafka.ProducerConfig{
		Brokers: cfg.Brokers(), DeliveryTimeout: cfg.KafkaAppendTimeout, Logger: log.With("component", "producer"),
	})
}

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/infra/softpro"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// ProjectionNames maps each event topic to its live projection name.
func ProjectionNames() map[string]string {
	out := make(map[string]string, len(domain.EventTopics))
	for _, t := range domain.EventTopics {
		out[t] = events.ProjectionName(t)
	}
	return out
}

// statusNames adds the poison consumer to ProjectionNames.
func statusNames() map[string]string {
	out := ProjectionNames()
	out[domain.TopicPoison] = events.PoisonProjection
	return out
}

// RecoveryTools are replay, rebuild, gap detection and filling,
// consistency validation and resync, wired over a pool and brokers.
type RecoveryTools struct {
	Log       *kafka.ReplayReader
	Replayer  *projections.Replayer
	Rebuilder *projections.Rebuilder
	Recovery  *projections.Recovery
	Runs      *postgres.RebuildRuns
	Target    *postgres.RebuildTarget
	Queries   *postgres.QueryStore
}

// RecoveryOptions tune NewRecoveryTools.
type RecoveryOptions struct {
	// BatchSize of rebuild transactions (default projections.DefaultRebuildBatch).
	BatchSize int
	// Workers of rebuild (default projections.DefaultRebuildWorkers).
	Workers int
	// OnProgress receives rebuild progress.
	OnProgress func(projections.RebuildRun)
	// Sync is scheduled sync and Integrations its integration store; nil
	// leaves the schedule side and resync out.
	Sync         *SyncSystem
	Integrations *postgres.IntegrationStore
	// SoftProAPIURL is SOFTPRO_API_URL: the base URL of stored connections
	// that leave theirs empty. It does not connect an integration that has
	// no stored connection.
	SoftProAPIURL string
	// Behind is the log-side gap threshold (default 5 minutes).
	Behind time.Duration
	// RateLimitDefault and RateWindow are the SoftPro API quota of
	// integrations without their own (RATE_LIMIT_DEFAULT, RATE_LIMIT_WINDOW).
	RateLimitDefault int
	RateWindow       time.Duration
}

// NewRecoveryTools wires the recovery tools; appender appends manual
// retries of poisoned events.
func NewRecoveryTools(ctx context.Context, pool *pgxpool.Pool, brokers []string, producer *kafka.Producer, o RecoveryOptions) (*RecoveryTools, error) {
	target, err := postgres.NewRebuildTarget(ctx, pool)
	if err != nil {
		return nil, err
	}
	log := kafka.NewReplayReader(brokers)
	runs := postgres.NewRebuildRuns(pool)
	store := postgres.NewProjectionStore(pool)
	rb, err := projections.NewRebuilder(projections.RebuildConfig{
		LiveSchema: target.LiveSchema(), Names: ProjectionNames(),
		BatchSize: o.BatchSize, Workers: o.Workers, OnProgress: o.OnProgress,
	}, target, runs, log)
	if err != nil {
		return nil, err
	}
	replayer := projections.NewReplayer(store, log, nil)
	qs := postgres.NewQueryStore(pool)
	deps := projections.RecoveryDeps{
		Log: log, Status: runs, Store: postgres.NewConsistencyStore(pool), Failed: postgres.NewConsistencyStore(pool),
		Retrier:  projections.NewRetrier(qs, kafka.NewLogReader(brokers), topicAppender{producer}, nil),
		Replayer: replayer, Settled: qs,
	}
	if o.Sync != nil && o.Integrations != nil {
		deps.Syncs = syncHistory{sys: o.Sync, integrations: o.Integrations}
		deps.Syncer = syncNow{sys: o.Sync}
		deps.Source = sourceLister{sys: o.Sync, integrations: o.Integrations, api: softpro.New(softpro.Config{}),
			conns: defaultBaseURL{o.Sync.Store, o.SoftProAPIURL}, defaultLimit: o.RateLimitDefault, window: o.RateWindow}
	}
	rec := projections.NewRecovery(projections.GapConfig{Behind: o.Behind, Names: ProjectionNames()}, deps)
	return &RecoveryTools{Log: log, Replayer: replayer, Rebuilder: rb, Recovery: rec, Runs: runs, Target: target, Queries: qs}, nil
}

// Status reports every projection.
func (t *RecoveryTools) Status(ctx context.Context) (projections.StatusReport, error) {
	return projections.ProjectionsStatus(ctx, t.Runs, t.Log, statusNames())
}

// syncHistory adapts the sync stores to projections.SyncHistory. An
// integration is connected when it has a stored connection, as sync
// requires (ingest.ErrNoConnection): SOFTPRO_API_URL alone syncs nothing.
type syncHistory struct {
	sys          *SyncSystem
	integrations *postgres.IntegrationStore
}

func (s syncHistory) SyncInfo(ctx context.Context, id string) (projections.SyncInfo, error) {
	in, err := s.integrations.Integration(ctx, id)
	if err != nil {
		return projections.SyncInfo{}, err
	}
	info := projections.SyncInfo{Active: in.Active, Enabled: in.Active && in.SyncEnabled, Frequency: time.Duration(in.SyncFrequency) * time.Minute}
	if conn, err := s.sys.Store.Connection(ctx, id); err == nil {
		info.Connected, info.ConnectedAt = true, conn.UpdatedAt
	} else if !errors.Is(err, domain.ErrNotFound) {
		return info, err
	}
	runs, err := s.sys.Store.Runs(ctx, id, 10)
	if err != nil {
		return info, err
	}
	for _, r := range runs {
		if r.Status == ingest.RunRunning {
			continue
		}
		info.Runs = append(info.Runs, projections.SyncRunInfo{Failed: r.Status == ingest.RunFailed, StartedAt: r.StartedAt,
			FinishedAt: r.FinishedAt, Error: r.Error})
	}
	return info, nil
}

// sourceLister asks the SoftPro API which records changed, under the
// integration's shared rate limit, for the data side of gap detection.
type sourceLister struct {
	sys          *SyncSystem
	integrations *postgres.IntegrationStore
	api          *softpro.Client
	conns        defaultBaseURL
	defaultLimit int
	window       time.Duration
}

var syncKinds = map[string]domain.Kind{
	domain.SyncTransactions: domain.KindTransaction, domain.SyncContacts: domain.KindContact,
	domain.SyncDocuments: domain.KindDocument, domain.SyncTasks: domain.KindTask,
}

// ChangedSince returns the SoftPro API's failures (an error answer, no
// answer, a rate limit or quota waited out, a refused token, cursors that
// never end) as a *projections.SourceError, so that gap detection leaves
// the data side out and checks the others; a failure of the database or
// of the rate limiter's store is returned as it is.
func (s sourceLister) ChangedSince(ctx context.Context, id string, since time.Time) ([]projections.SourceRecord, error) {
	recs, err := s.changedSince(ctx, id, since)
	var api *ingest.APIError
	var limited *ingest.RateLimitedError
	if errors.As(err, &api) || errors.As(err, &limited) || errors.Is(err, ingest.ErrTokenRefused) ||
		errors.Is(err, ingest.ErrQuotaExhausted) || errors.Is(err, ingest.ErrNoProgress) {
		return nil, &projections.SourceError{Err: err}
	}
	return recs, err
}

func (s sourceLister) changedSince(ctx context.Context, id string, since time.Time) ([]projections.SourceRecord, error) {
	in, err := s.integrations.Integration(ctx, id)
	if err != nil {
		return nil, err
	}
	conn, err := s.conns.Connection(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if conn.BaseURL == "" {
		return nil, nil
	}
	q := ingest.QuotaOf(in, s.defaultLimit, s.window)
	var out []projections.SourceRecord
	for _, typ := range domain.SyncTypes {
		cursor := ""
		var cursors ingest.CursorProgress
		for tries, renewed := 0, false; ; {
			// As a sync run does: no quota wait longer than the longest a
			// run waits, and no paging for ever through cursors already
			// asked for.
			wctx, cancel := context.WithTimeout(ctx, ingest.DefaultMaxRateLimitWait)
			err := s.sys.Limits.Wait(wctx, id, q)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("list %s: rate limiter: %w", typ, err)
			}
			page, err := s.api.List(ctx, conn, ingest.PageRequest{Type: typ, ModifiedSince: since, Cursor: cursor, Limit: 100})
			var rl *ingest.RateLimitedError
			if errors.As(err, &rl) && tries < 5 {
				tries++
				if err := s.sys.Limits.Drain(ctx, id, q, rl.RetryAfter); err != nil {
					return nil, err
				}
				continue
			}
			if errors.Is(err, ingest.ErrTokenRefused) && !renewed {
				renewed = true
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", typ, err)
			}
			for _, r := range page.Records {
				out = append(out, projections.SourceRecord{Kind: syncKinds[typ], ID: r.ID, UpdatedAt: r.UpdatedAt})
			}
			if page.NextCursor == "" {
				break
			}
			if err := cursors.Next(cursor, page.NextCursor); err != nil {
				return nil, fmt.Errorf("list %s: %w", typ, err)
			}
			cursor = page.NextCursor
		}
	}
	return out, nil
}

// syncNow adapts the sync job to projections.Syncer. It pulls every sync
// type, whatever the integration's syncTypes: gap detection asks the API
// about every type, and a resync pulls every record. A type never synced
// has no watermark, so it is pulled whole.
type syncNow struct{ sys *SyncSystem }

func (s syncNow) SyncNow(ctx context.Context, id string, since time.Time, full bool) (int, error) {
	// The job moves the watermarks back once the run is admitted, so a
	// refused one (inactive, no connection, another run) changes nothing.
	run, err := s.sys.Syncer.Sync(ctx, ingest.SyncRequest{IntegrationID: id, Types: domain.SyncTypes,
		Trigger: ingest.TriggerManual, Full: full, Since: since})
	return run.Total(), err
}

// wireRecovery builds the recovery tools into the app and returns their
// admin routes and the health and metrics routes of one integration, which
// read its queue through the same log scan as gap detection.
func (a *App) wireRecovery(ctx context.Context) ([]func(chi.Router), error) {
	sys, err := NewSyncSystem(a.cfg, a.pool, a.rdb, a.store, a.producer)
	if err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	}
	tools, err := NewRecoveryTools(ctx, a.pool, a.Brokers(), a.producer, RecoveryOptions{Sync: sys, Integrations: a.store,
		SoftProAPIURL: a.cfg.SoftProAPIURL, RateLimitDefault: a.cfg.RateLimitDefault, RateWindow: time.Duration(a.cfg.RateLimitWindowMs) * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	}
	bg := &background{}
	a.runnables = append(a.runnables, bg.run)
	monitor := projections.NewMonitor(projections.MonitorDeps{Syncs: syncHistory{sys: sys, integrations: a.store},
		Counts: tools.Queries, Store: tools.Queries, Pending: tools.Recovery})
	return []func(chi.Router){
		httpapi.RecoveryRoutes(httpapi.RecoveryDeps{
			Status: tools, Rebuilder: tools.Rebuilder, Replayer: tools.Replayer, Recovery: tools.Recovery,
			Integrations: a.store, Go: bg.Go, Logger: a.log.With("component", "recovery"),
		}),
		httpapi.MonitorRoutes(monitor),
	}, nil
}

// RecoveryTool is the recovery tools for the CLI.
type RecoveryTool struct {
	*RecoveryTools
	pool    *pgxpool.Pool
	closers closers
}

// Close releases the tool's connections.
func (t *RecoveryTool) Close() { t.closers.closeAll() }

// KnownIntegration returns an error wrapping domain.ErrNotFound when no
// integration has the id, as the recovery routes of one integration answer
// 404: a replay or a validation of it would find nothing and report
// success.
func (t *RecoveryTool) KnownIntegration(ctx context.Context, id string) error {
	return postgres.KnownIntegration(ctx, t.pool, id)
}

// OpenRecoveryTool connects to Postgres and the brokers named by cfg (a
// running serve's embedded broker when KAFKA_BROKERS is unset). With
// SECRETS_KEY set it also wires scheduled sync (Redis, SoftPro API), which
// resync and the schedule side of gaps need.
func OpenRecoveryTool(ctx context.Context, cfg Config, log *slog.Logger, o RecoveryOptions) (*RecoveryTool, error) {
	t := &RecoveryTool{}
	fail := func(err error) (*RecoveryTool, error) {
		t.Close()
		return nil, err
	}
	pool, err := OpenDatabase(ctx, cfg, false)
	if err != nil {
		return fail(err)
	}
	t.pool = pool
	t.closers.add(pool.Close)
	producer, err := newProducer(cfg, log)
	if err != nil {
		return fail(err)
	}
	t.closers.add(producer.Close)
	if cfg.SecretsKey != "" {
		st, err := OpenSyncTool(ctx, cfg, log)
		if err != nil {
			return fail(err)
		}
		t.closers.add(st.Close)
		box, err := secretbox.NewFromString(cfg.SecretsKey)
		if err != nil {
			return fail(fmt.Errorf("SECRETS_KEY: %w", err))
		}
		o.Sync, o.Integrations, o.SoftProAPIURL = st.SyncSystem, postgres.NewIntegrationStore(pool, box), cfg.SoftProAPIURL
		o.RateLimitDefault, o.RateWindow = cfg.RateLimitDefault, time.Duration(cfg.RateLimitWindowMs)*time.Millisecond
	}
	t.RecoveryTools, err = NewRecoveryTools(ctx, pool, cfg.Brokers(), producer, o)
	if err != nil {
		return fail(err)
	}
	return t, nil
}

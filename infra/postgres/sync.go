package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/ingest"
)

var (
	_ ingest.RunRecorder      = (*SyncStore)(nil)
	_ ingest.Watermarks       = (*SyncStore)(nil)
	_ ingest.ConnectionSource = (*SyncStore)(nil)
)

// SyncStore keeps what scheduled sync needs in Postgres: SoftPro API
// connections (credentials sealed by a secretbox.Box), per-type watermarks
// and the record of runs. It is safe for concurrent use.
type SyncStore struct {
	pool *pgxpool.Pool
	box  *secretbox.Box
}

// NewSyncStore returns a store over pool sealing credentials with box; both
// are required.
func NewSyncStore(pool *pgxpool.Pool, box *secretbox.Box) *SyncStore {
	if pool == nil || box == nil {
		panic("postgres: NewSyncStore needs a pool and a secret box")
	}
	return &SyncStore{pool: pool, box: box}
}

// SetConnection creates or replaces an integration's connection. Empty
// secrets keep the stored ones, so a base URL can change without resending
// credentials. It returns an error wrapping domain.ErrNotFound when the
// integration does not exist.
func (s *SyncStore) SetConnection(ctx context.Context, c domain.SoftProConnection) error {
	seal := func(v string) ([]byte, error) {
		if v == "" {
			return nil, nil
		}
		return s.box.Seal([]byte(v))
	}
	key, err := seal(c.APIKey)
	if err != nil {
		return fmt.Errorf("seal api key: %w", err)
	}
	secret, err := seal(c.ClientSecret)
	if err != nil {
		return fmt.Errorf("seal client secret: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO softpro_connections
		(integration_id, base_url, auth, api_key_sealed, client_id, client_secret_sealed, token_url, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (integration_id) DO UPDATE SET base_url = EXCLUDED.base_url, auth = EXCLUDED.auth,
			api_key_sealed = coalesce(EXCLUDED.api_key_sealed, softpro_connections.api_key_sealed),
			client_id = EXCLUDED.client_id,
			client_secret_sealed = coalesce(EXCLUDED.client_secret_sealed, softpro_connections.client_secret_sealed),
			token_url = EXCLUDED.token_url, updated_at = now()`,
		c.IntegrationID, c.BaseURL, string(c.Auth), key, c.ClientID, secret, c.TokenURL)
	if hasCode(err, "23503") {
		return fmt.Errorf("set connection %s: %w", c.IntegrationID, domain.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set connection %s: %w", c.IntegrationID, err)
	}
	return nil
}

// Connection returns an integration's connection with its secrets opened;
// an error wrapping domain.ErrNotFound when there is none.
func (s *SyncStore) Connection(ctx context.Context, id string) (domain.SoftProConnection, error) {
	var (
		c           domain.SoftProConnection
		auth        string
		key, secret []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT integration_id, base_url, auth, api_key_sealed, client_id,
		client_secret_sealed, token_url, updated_at FROM softpro_connections WHERE integration_id = $1`, id).
		Scan(&c.IntegrationID, &c.BaseURL, &auth, &key, &c.ClientID, &secret, &c.TokenURL, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("connection %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("connection %s: %w", id, err)
	}
	c.Auth = domain.SoftProAuth(auth)
	open := func(b []byte) (string, error) {
		if b == nil {
			return "", nil
		}
		p, err := s.box.Open(b)
		return string(p), err
	}
	if c.APIKey, err = open(key); err != nil {
		return c, fmt.Errorf("connection %s: open api key: %w", id, err)
	}
	if c.ClientSecret, err = open(secret); err != nil {
		return c, fmt.Errorf("connection %s: open client secret: %w", id, err)
	}
	return c, nil
}

// Watermark returns the stored mark, the zero SyncMark when there is none.
func (s *SyncStore) Watermark(ctx context.Context, id, syncType string) (ingest.SyncMark, error) {
	var (
		m      ingest.SyncMark
		recent []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT watermark, recent FROM sync_watermarks WHERE integration_id = $1 AND sync_type = $2`,
		id, syncType).Scan(&m.At, &recent)
	if errors.Is(err, pgx.ErrNoRows) {
		return ingest.SyncMark{}, nil
	}
	if err != nil {
		return m, fmt.Errorf("watermark %s/%s: %w", id, syncType, err)
	}
	m.At = m.At.UTC()
	if err := json.Unmarshal(recent, &m.Recent); err != nil {
		return m, fmt.Errorf("watermark %s/%s: recent: %w", id, syncType, err)
	}
	return m, nil
}

// SetWatermark stores m, its watermark later or earlier than the stored
// one: a sync moves it forward page by page, and moving it back makes the
// next run pull again every record changed since then (a gap fill from the
// gap's start). An earlier watermark only costs records pulled twice,
// which dedupe by event id.
func (s *SyncStore) SetWatermark(ctx context.Context, id, syncType string, m ingest.SyncMark) error {
	recent := m.Recent
	if recent == nil {
		recent = map[string]time.Time{}
	}
	doc, err := json.Marshal(recent)
	if err != nil {
		return fmt.Errorf("set watermark %s/%s: %w", id, syncType, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO sync_watermarks (integration_id, sync_type, watermark, recent) VALUES ($1, $2, $3, $4)
		ON CONFLICT (integration_id, sync_type) DO UPDATE
		SET watermark = EXCLUDED.watermark, recent = EXCLUDED.recent, updated_at = now()`, id, syncType, m.At, doc)
	if err != nil {
		return fmt.Errorf("set watermark %s/%s: %w", id, syncType, err)
	}
	return nil
}

// ResetWatermarks forgets an integration's watermarks, so the next run is
// a full sync.
func (s *SyncStore) ResetWatermarks(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sync_watermarks WHERE integration_id = $1`, id); err != nil {
		return fmt.Errorf("reset watermarks %s: %w", id, err)
	}
	return nil
}

// StartRun inserts a running run and returns its id. The caller holds the
// integration's sync lock, so any other run of it still recorded as running
// belongs to a process that stopped without finishing it (its lock
// expired): those are recorded as failed, finished when this one started.
func (s *SyncStore) StartRun(ctx context.Context, r ingest.SyncRun) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `WITH abandoned AS (
			UPDATE sync_runs SET status = 'failed', finished_at = $5,
				error = 'abandoned: the process running it stopped before it finished'
			WHERE integration_id = $1 AND status = 'running')
		INSERT INTO sync_runs (integration_id, trigger, types, status, started_at, holder)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		r.IntegrationID, string(r.Trigger), r.Types, string(r.Status), r.StartedAt, r.Holder).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("start run %s: %w", r.IntegrationID, err)
	}
	return id, nil
}

// FinishRun writes a run's outcome and figures.
func (s *SyncStore) FinishRun(ctx context.Context, r ingest.SyncRun) error {
	records, err := json.Marshal(r.Records)
	if err != nil {
		return err
	}
	var msg *string
	if r.Error != "" {
		msg = &r.Error
	}
	_, err = s.pool.Exec(ctx, `UPDATE sync_runs SET status = $2, finished_at = $3, records = $4, requests = $5,
		rate_limited = $6, retries = $7, error = $8 WHERE id = $1`,
		r.ID, string(r.Status), r.FinishedAt, records, r.Requests, r.RateLimited, r.Retries, msg)
	if err != nil {
		return fmt.Errorf("finish run %d: %w", r.ID, err)
	}
	return nil
}

const runColumns = `id, integration_id, trigger, types, status, started_at, finished_at, records, requests,
	rate_limited, retries, coalesce(error, ''), holder`

func scanRun(row pgx.CollectableRow) (ingest.SyncRun, error) {
	var (
		r       ingest.SyncRun
		trigger string
		status  string
		records []byte
	)
	err := row.Scan(&r.ID, &r.IntegrationID, &trigger, &r.Types, &status, &r.StartedAt, &r.FinishedAt, &records,
		&r.Requests, &r.RateLimited, &r.Retries, &r.Error, &r.Holder)
	if err != nil {
		return r, err
	}
	r.Trigger, r.Status = ingest.Trigger(trigger), ingest.RunStatus(status)
	r.StartedAt = r.StartedAt.UTC()
	r.FinishedAt = utcPtr(r.FinishedAt)
	r.Records = map[string]int{}
	if err := json.Unmarshal(records, &r.Records); err != nil {
		return r, fmt.Errorf("run %d records: %w", r.ID, err)
	}
	return r, nil
}

// Runs returns an integration's runs, newest first, at most limit. It
// returns an error wrapping domain.ErrNotFound when there is no such
// integration (one without runs yet has an empty list).
func (s *SyncStore) Runs(ctx context.Context, id string, limit int) ([]ingest.SyncRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runColumns+` FROM sync_runs WHERE integration_id = $1
		ORDER BY id DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("runs %s: %w", id, err)
	}
	runs, err := pgx.CollectRows(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("runs %s: %w", id, err)
	}
	if len(runs) == 0 {
		var known bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM softpro_integrations WHERE id = $1)`, id).Scan(&known); err != nil {
			return nil, fmt.Errorf("runs %s: %w", id, err)
		}
		if !known {
			return nil, fmt.Errorf("runs %s: %w", id, domain.ErrNotFound)
		}
	}
	return runs, nil
}

// LastRuns returns each integration's newest run.
func (s *SyncStore) LastRuns(ctx context.Context) (map[string]ingest.SyncRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (integration_id) `+runColumns+` FROM sync_runs
		ORDER BY integration_id, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	out := make(map[string]ingest.SyncRun, len(runs))
	for _, r := range runs {
		out[r.IntegrationID] = r
	}
	return out, nil
}

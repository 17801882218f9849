package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/ingest"
)

// IntegrationChangedChannel is the NOTIFY channel on which every change to
// an integration announces the integration's id. Channels are per database,
// not per schema.
const IntegrationChangedChannel = "integration_changed"

// Listen timing. The health check catches a connection that died without the
// socket noticing (a network partition) within about one interval.
const (
	listenHealthInterval = 30 * time.Second
	listenRetryMin       = 100 * time.Millisecond
	listenRetryMax       = 5 * time.Second
)

var _ ingest.IntegrationSource = (*IntegrationStore)(nil)

// IntegrationStore keeps integrations in softpro_integrations and their
// webhook secrets, sealed by a secretbox.Box, in integration_secrets. It
// does not validate settings (see domain.ValidateSettings); it stores what it
// is given. It is safe for concurrent use.
type IntegrationStore struct {
	pool *pgxpool.Pool
	box  *secretbox.Box
}

// NewIntegrationStore returns a store over pool that seals secrets with box.
// Both are required.
func NewIntegrationStore(pool *pgxpool.Pool, box *secretbox.Box) *IntegrationStore {
	if pool == nil || box == nil {
		panic("postgres: NewIntegrationStore needs a pool and a secret box")
	}
	return &IntegrationStore{pool: pool, box: box}
}

// querier is what the store needs from a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const integrationColumns = `id, organization_id, active, webhook_enabled, signature_scheme,
	sync_enabled, sync_frequency, sync_types, last_sync_at, last_scheduled_sync_at,
	sync_status, last_sync_error, rate_limit, ingest_rate_limit, webhook_retry_config,
	created_at, updated_at`

// Create inserts in and returns it as stored, with CreatedAt and UpdatedAt
// set by the database. in.Secrets is ignored: when secret is not empty it
// becomes the integration's first secret, with a generated key id, valid from
// now and open-ended. An empty SignatureScheme is stored as "softpro", an
// empty SyncStatus as "IDLE", a zero IngestRateLimit as "use the service
// default" and nil SyncTypes as none.
//
// Create returns an error wrapping domain.ErrConflict when the id is taken.
// It notifies IntegrationChangedChannel when it commits.
func (s *IntegrationStore) Create(ctx context.Context, in domain.Integration, secret string) (domain.Integration, error) {
	if in.ID == "" {
		return domain.Integration{}, fmt.Errorf("create integration: %w", &domain.ValidationError{Problems: []string{"id is required"}})
	}
	if in.SignatureScheme == "" {
		in.SignatureScheme = domain.SchemeSoftPro
	}
	if in.SyncStatus == "" {
		in.SyncStatus = "IDLE"
	}
	var out domain.Integration
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		args, err := settableArgs(in)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO softpro_integrations (id, organization_id, active,
			webhook_enabled, signature_scheme, sync_enabled, sync_frequency, sync_types,
			last_sync_at, last_scheduled_sync_at, sync_status, last_sync_error, rate_limit,
			ingest_rate_limit, webhook_retry_config)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			append([]any{in.ID}, args...)...)
		if hasCode(err, codeUniqueViolation) {
			return fmt.Errorf("integration %q already exists: %w", in.ID, domain.ErrConflict)
		}
		if err != nil {
			return err
		}
		if secret != "" {
			if err := s.addSecret(ctx, tx, in.ID, secret, time.Now()); err != nil {
				return err
			}
		}
		if err := notifyChanged(ctx, tx, in.ID); err != nil {
			return err
		}
		out, err = s.load(ctx, tx, in.ID, false)
		return err
	})
	if err != nil {
		return domain.Integration{}, fmt.Errorf("create integration %s: %w", in.ID, err)
	}
	return out, nil
}

// Integration returns the integration with its secrets decrypted, newest
// first, including ones no longer or not yet valid (domain.Secret.ValidAt
// decides). It returns an error wrapping domain.ErrNotFound when there is
// none.
func (s *IntegrationStore) Integration(ctx context.Context, id string) (domain.Integration, error) {
	in, err := s.load(ctx, s.pool, id, false)
	if err != nil {
		return domain.Integration{}, fmt.Errorf("get integration %s: %w", id, err)
	}
	return in, nil
}

// KnownIntegration returns an error wrapping domain.ErrNotFound, worded as
// IntegrationStore.Integration words it, when no integration has the id. It
// reads no secret, so it needs no secret box.
func KnownIntegration(ctx context.Context, pool *pgxpool.Pool, id string) error {
	var known bool
	// No row has an id Postgres cannot hold; asking would fail.
	if isText(id) {
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM softpro_integrations WHERE id = $1)`, id).Scan(&known); err != nil {
			return fmt.Errorf("get integration %s: %w", id, err)
		}
	}
	if !known {
		return fmt.Errorf("get integration %s: %w", id, domain.ErrNotFound)
	}
	return nil
}

// List returns every integration ordered by id, each with its decrypted
// secrets as Integration returns them.
func (s *IntegrationStore) List(ctx context.Context) ([]domain.Integration, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+integrationColumns+` FROM softpro_integrations ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanIntegration)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	secrets, err := s.secrets(ctx, s.pool, "")
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	for i := range list {
		list[i].Secrets = secrets[list[i].ID]
	}
	return list, nil
}

// Update changes one integration atomically: in a transaction it loads the
// row (with its secrets) FOR UPDATE, calls fn on it, writes every settable
// field back and sets UpdatedAt. fn may run while other writers of the same
// integration wait; it must not block for long. If fn returns an error,
// nothing is written and Update returns that error wrapped.
//
// ID, Secrets, CreatedAt and UpdatedAt are not settable: a change to ID is an
// error, changes to the others are ignored (use RotateSecret for secrets).
// Update returns the stored result, an error wrapping domain.ErrNotFound when
// there is no such integration, and notifies IntegrationChangedChannel when
// it commits.
func (s *IntegrationStore) Update(ctx context.Context, id string, fn func(*domain.Integration) error) (domain.Integration, error) {
	return s.changeInTx(ctx, "update integration", id, func(tx pgx.Tx) error {
		return s.update(ctx, tx, id, fn)
	})
}

// UpdateRotating is Update and then RotateSecret, in one transaction:
// either both take effect or neither does.
func (s *IntegrationStore) UpdateRotating(ctx context.Context, id string, fn func(*domain.Integration) error, newSecret string, grace time.Duration, now time.Time) (domain.Integration, error) {
	return s.changeInTx(ctx, "update integration", id, func(tx pgx.Tx) error {
		if err := s.update(ctx, tx, id, fn); err != nil {
			return err
		}
		return s.rotate(ctx, tx, id, newSecret, grace, now)
	})
}

// changeInTx runs change in a transaction and returns integration id as
// it then is; errors are prefixed with what and id.
func (s *IntegrationStore) changeInTx(ctx context.Context, what, id string, change func(pgx.Tx) error) (domain.Integration, error) {
	var out domain.Integration
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := change(tx); err != nil {
			return err
		}
		var err error
		out, err = s.load(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return domain.Integration{}, fmt.Errorf("%s %s: %w", what, id, err)
	}
	return out, nil
}

// update applies fn to integration id within tx.
func (s *IntegrationStore) update(ctx context.Context, tx pgx.Tx, id string, fn func(*domain.Integration) error) error {
	in, err := s.load(ctx, tx, id, true)
	if err != nil {
		return err
	}
	if err := fn(&in); err != nil {
		return err
	}
	if in.ID != id {
		return fmt.Errorf("the id of an integration cannot change (to %q)", in.ID)
	}
	args, err := settableArgs(in)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE softpro_integrations SET organization_id = $2, active = $3,
		webhook_enabled = $4, signature_scheme = $5, sync_enabled = $6, sync_frequency = $7,
		sync_types = $8, last_sync_at = $9, last_scheduled_sync_at = $10, sync_status = $11,
		last_sync_error = $12, rate_limit = $13, ingest_rate_limit = $14,
		webhook_retry_config = $15, updated_at = now()
		WHERE id = $1`, append([]any{id}, args...)...)
	if err != nil {
		return err
	}
	return notifyChanged(ctx, tx, id)
}

// RotateSecret adds newSecret, valid from now and open-ended, and limits
// every previous secret still valid after now+grace to end at now+grace, so
// senders have the grace period to switch; a secret already ending earlier
// keeps its end. Secrets that expired before now are deleted, as they can
// never verify again. A negative grace counts as zero.
//
// It returns the integration with its secrets, an error wrapping
// domain.ErrNotFound when there is none, and notifies
// IntegrationChangedChannel when it commits.
func (s *IntegrationStore) RotateSecret(ctx context.Context, id, newSecret string, grace time.Duration, now time.Time) (domain.Integration, error) {
	return s.changeInTx(ctx, "rotate secret of integration", id, func(tx pgx.Tx) error {
		return s.rotate(ctx, tx, id, newSecret, grace, now)
	})
}

// rotate is RotateSecret within tx.
func (s *IntegrationStore) rotate(ctx context.Context, tx pgx.Tx, id, newSecret string, grace time.Duration, now time.Time) error {
	if newSecret == "" {
		return &domain.ValidationError{Problems: []string{"secret is required"}}
	}
	grace = max(grace, 0)
	tag, err := tx.Exec(ctx, `UPDATE softpro_integrations SET updated_at = now() WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return domain.ErrNotFound
	}
	end := now.Add(grace)
	if _, err := tx.Exec(ctx, `DELETE FROM integration_secrets
		WHERE integration_id = $1 AND not_after <= $2`, id, now); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE integration_secrets SET not_after = $2
		WHERE integration_id = $1 AND (not_after IS NULL OR not_after > $2)`, id, end); err != nil {
		return err
	}
	if err := s.addSecret(ctx, tx, id, newSecret, now); err != nil {
		return err
	}
	return notifyChanged(ctx, tx, id)
}

// Listen LISTENs on IntegrationChangedChannel over a connection of its own
// and calls fn with the id in each notification, one call at a time, until
// ctx ends; it then returns nil. As channels are per database, fn also sees
// ids changed in other schemas of the same database; treat them as "may have
// changed".
//
// Every time the LISTEN is established, first and after each reconnect, fn("")
// is called to mean "anything may have changed while not listening:
// invalidate everything"; the first such call also tells the caller that no
// later change will be missed. When the connection is lost, Listen reconnects
// with backoff. It returns an error only when the first connection fails.
func (s *IntegrationStore) Listen(ctx context.Context, fn func(id string)) error {
	conn, err := s.listenConn(ctx)
	if err != nil {
		return fmt.Errorf("listen %s: %w", IntegrationChangedChannel, err)
	}
	for {
		fn("")
		deliverNotifications(ctx, conn, fn)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(closeCtx) // Broken or no longer needed either way.
		cancel()
		if conn = s.reconnect(ctx); conn == nil {
			return nil
		}
	}
}

// deliverNotifications passes notifications from conn to fn until the
// connection fails or ctx ends, pinging the server whenever it has been
// silent for listenHealthInterval.
func deliverNotifications(ctx context.Context, conn *pgx.Conn, fn func(string)) {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenHealthInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if n.Channel == IntegrationChangedChannel {
				fn(n.Payload)
			}
		case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, pcancel := context.WithTimeout(ctx, listenHealthInterval)
			err = conn.Ping(pctx)
			pcancel()
			if err != nil {
				return
			}
		default:
			return
		}
	}
}

// reconnect retries listenConn with exponential backoff until it succeeds
// or ctx ends (then it returns nil).
func (s *IntegrationStore) reconnect(ctx context.Context) *pgx.Conn {
	wait := listenRetryMin
	for ctx.Err() == nil {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if conn, err := s.listenConn(ctx); err == nil {
			return conn
		}
		wait = min(2*wait, listenRetryMax)
	}
	return nil
}

func (s *IntegrationStore) listenConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{IntegrationChangedChannel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

func notifyChanged(ctx context.Context, tx pgx.Tx, id string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, IntegrationChangedChannel, id)
	return err
}

// addSecret seals secret and stores it under a fresh key id, valid from now.
func (s *IntegrationStore) addSecret(ctx context.Context, q querier, id, secret string, now time.Time) error {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("generate key id: %w", err)
	}
	sealed, err := s.box.Seal([]byte(secret))
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO integration_secrets (integration_id, key_id, sealed, not_before)
		VALUES ($1, $2, $3, $4)`, id, "k_"+hex.EncodeToString(b[:]), sealed, now)
	return err
}

// load reads one integration and its secrets, optionally locking the row.
func (s *IntegrationStore) load(ctx context.Context, q querier, id string, forUpdate bool) (domain.Integration, error) {
	if !isText(id) {
		// No row has an id Postgres cannot hold; asking would fail.
		return domain.Integration{}, domain.ErrNotFound
	}
	sql := `SELECT ` + integrationColumns + ` FROM softpro_integrations WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	rows, err := q.Query(ctx, sql, id)
	if err != nil {
		return domain.Integration{}, err
	}
	in, err := pgx.CollectExactlyOneRow(rows, scanIntegration)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Integration{}, domain.ErrNotFound
	}
	if err != nil {
		return domain.Integration{}, err
	}
	secrets, err := s.secrets(ctx, q, id)
	if err != nil {
		return domain.Integration{}, err
	}
	in.Secrets = secrets[id]
	return in, nil
}

// secrets returns the decrypted secrets of one integration, or of all when
// id is "", by integration id and newest first.
func (s *IntegrationStore) secrets(ctx context.Context, q querier, id string) (map[string][]domain.Secret, error) {
	rows, err := q.Query(ctx, `SELECT integration_id, key_id, sealed, not_before, not_after
		FROM integration_secrets WHERE $1 = '' OR integration_id = $1
		ORDER BY integration_id, not_before DESC, created_at DESC, key_id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string][]domain.Secret)
	for rows.Next() {
		var (
			owner, keyID string
			sealed       []byte
			notBefore    time.Time
			notAfter     *time.Time
		)
		if err := rows.Scan(&owner, &keyID, &sealed, &notBefore, &notAfter); err != nil {
			return nil, err
		}
		plain, err := s.box.Open(sealed)
		if err != nil {
			return nil, fmt.Errorf("open secret %s of integration %s: %w", keyID, owner, err)
		}
		sec := domain.Secret{KeyID: keyID, Value: plain, NotBefore: notBefore.UTC()}
		if notAfter != nil {
			sec.NotAfter = notAfter.UTC()
		}
		out[owner] = append(out[owner], sec)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// settableArgs returns the values of the settable columns in the order
// organization_id .. webhook_retry_config used by Create and Update.
func settableArgs(in domain.Integration) ([]any, error) {
	var retry []byte
	if in.RetryConfig != nil {
		var err error
		if retry, err = json.Marshal(in.RetryConfig); err != nil {
			return nil, fmt.Errorf("encode retry config: %w", err)
		}
	}
	var ingestLimit *int
	if in.IngestRateLimit > 0 {
		ingestLimit = &in.IngestRateLimit
	}
	syncTypes := in.SyncTypes
	if syncTypes == nil {
		syncTypes = []string{}
	}
	return []any{
		in.OrganizationID, in.Active, in.WebhookEnabled, string(in.SignatureScheme),
		in.SyncEnabled, in.SyncFrequency, syncTypes, in.LastSyncAt, in.LastScheduledSyncAt,
		in.SyncStatus, in.LastSyncError, in.RateLimit, ingestLimit, retry,
	}, nil
}

func scanIntegration(row pgx.CollectableRow) (domain.Integration, error) {
	var (
		in          domain.Integration
		scheme      string
		ingestLimit *int
		retry       []byte
	)
	err := row.Scan(&in.ID, &in.OrganizationID, &in.Active, &in.WebhookEnabled, &scheme,
		&in.SyncEnabled, &in.SyncFrequency, &in.SyncTypes, &in.LastSyncAt, &in.LastScheduledSyncAt,
		&in.SyncStatus, &in.LastSyncError, &in.RateLimit, &ingestLimit, &retry,
		&in.CreatedAt, &in.UpdatedAt)
	if err != nil {
		return domain.Integration{}, err
	}
	in.SignatureScheme = domain.SignatureScheme(scheme)
	if ingestLimit != nil {
		in.IngestRateLimit = *ingestLimit
	}
	if retry != nil {
		in.RetryConfig = new(domain.RetryConfig)
		if err := json.Unmarshal(retry, in.RetryConfig); err != nil {
			return domain.Integration{}, fmt.Errorf("decode retry config of integration %s: %w", in.ID, err)
		}
	}
	in.CreatedAt = in.CreatedAt.UTC()
	in.UpdatedAt = in.UpdatedAt.UTC()
	in.LastSyncAt = utcPtr(in.LastSyncAt)
	in.LastScheduledSyncAt = utcPtr(in.LastScheduledSyncAt)
	return in, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Package postgres holds the Postgres adapters: the connection pool, the
// embedded schema migrations and the stores built on them.
//
// Every statement uses unqualified names and resolves them through the
// connection's search_path, so one database can hold several independent
// copies of the schema (tests isolate themselves this way, and a rebuild can
// fill a fresh schema before it is swapped in).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Postgres error codes this package branches on.
const (
	codeUniqueViolation    = "23505"
	codeInvalidCatalogName = "3D000"
	codeDuplicateDatabase  = "42P04"
	codeDuplicateSchema    = "42P06"
)

func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}

// Open returns a pool for databaseURL after checking that the server
// answers.
//
// When createIfMissing is set and the database named in the URL does not
// exist, Open connects to the "postgres" database of the same server with the
// same credentials and creates it; another process creating it at the same
// time is not an error.
//
// When the URL sets search_path (for example ?search_path=tenant_a), every
// pooled connection uses it, and Open creates the first schema listed if it
// does not exist yet (it checks first, so a role without the CREATE privilege
// can still open an existing schema). "$user" and pg_* entries are never
// created.
//
// The caller owns the pool and must Close it.
func Open(ctx context.Context, databaseURL string, createIfMissing bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("open postgres: invalid database URL")
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (4 on two cores) is below the projections'
		// transactions plus the API's queries.
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	err = pool.Ping(ctx)
	if err != nil && createIfMissing && hasCode(err, codeInvalidCatalogName) {
		if err = createDatabase(ctx, cfg.ConnConfig); err == nil {
			err = pool.Ping(ctx)
		}
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres database %q: %w", cfg.ConnConfig.Database, err)
	}
	if schema := firstSchema(cfg.ConnConfig.RuntimeParams["search_path"]); schema != "" {
		if err := ensureSchema(ctx, pool, schema); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open postgres: %w", err)
		}
	}
	return pool, nil
}

// defaultMaxConns is the pool size unless the URL sets pool_max_conns.
const defaultMaxConns = 16

// createDatabase creates cfg.Database through the server's maintenance
// database.
func createDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	admin := cfg.Copy()
	name := admin.Database
	admin.Database = "postgres"
	delete(admin.RuntimeParams, "search_path")
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("create database %q: connect to maintenance database: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !hasCode(err, codeDuplicateDatabase, codeUniqueViolation) {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// firstSchema returns the first schema named in a search_path setting that
// Open may create, or "" when there is none.
func firstSchema(searchPath string) string {
	first, _, _ := strings.Cut(searchPath, ",")
	first = strings.TrimSpace(first)
	if len(first) >= 2 && first[0] == '"' && first[len(first)-1] == '"' {
		first = strings.ReplaceAll(first[1:len(first)-1], `""`, `"`)
	} else {
		// Unquoted identifiers fold to lower case, as in SQL.
		first = strings.ToLower(first)
	}
	if first == "$user" || strings.HasPrefix(first, "pg_") {
		return ""
	}
	return first
}

func ensureSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var exists bool
	err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up schema %q: %w", schema, err)
	}
	if exists {
		return nil
	}
	_, err = pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	if err != nil && !hasCode(err, codeDuplicateSchema, codeUniqueViolation) {
		return fmt.Errorf("create schema %q: %w", schema, err)
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies every embedded migration not yet applied to the pool's
// current schema (the first existing schema on its search_path), recording
// versions in that schema's goose_db_version table. Each schema therefore
// migrates independently; running Migrate again is a no-op.
//
// Concurrent calls for the same schema, from this or other processes, are
// serialised by a Postgres advisory lock derived from the database and schema
// names; calls for different schemas do not wait for each other. Each
// migration runs in its own transaction unless the file says otherwise.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	var database string
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_database(), current_schema()").Scan(&database, &schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if schema == nil {
		return errors.New("migrate: no schema on the search_path exists")
	}
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close() // Does not close the pool.
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		// Migrations are numbered by area (00010 sync, 00020 queries, …), so a
		// database may have a higher one applied before a lower one ships.
		goose.WithAllowOutofOrder(true),
		goose.WithSessionLocker(advisoryLocker{id: lockID(database, *schema)}),
	)
	if err != nil {
		return fmt.Errorf("migrate schema %q: %w", *schema, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate schema %q: %w", *schema, err)
	}
	return nil
}

// lockID derives the advisory lock key that guards one schema's migrations.
func lockID(database, schema string) int64 { return advisoryKey("migrate", database, schema) }

// advisoryKey is the advisory lock key named by what and its parts
// ("softprohub/what\x00part…", hashed).
func advisoryKey(what string, parts ...string) int64 {
	h := fnv.New64a()
	h.Write([]byte("softprohub/" + what))
	for _, p := range parts {
		h.Write([]byte("\x00" + p))
	}
	return int64(h.Sum64())
}

// advisoryLocker is a goose session locker that blocks on
// pg_advisory_lock until the lock is free or ctx ends, instead of goose's
// default of polling every five seconds.
type advisoryLocker struct {
	id int64
}

var _ lock.SessionLocker = advisoryLocker{}

func (l advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func (l advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", l.id); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}

// ErrReadOnly is returned by Writable for a database that takes no writes.
var ErrReadOnly = errors.New("postgres takes no writes (a standby in recovery, or read-only transactions)")

// ErrMissingGrants is returned by Writable when the connecting role may
// not read and write every read-model table.
var ErrMissingGrants = errors.New("postgres role lacks SELECT, INSERT or UPDATE")

// Writable returns a health probe that fails, beyond what a ping sees, when
// the database takes no writes, or the role no longer may write the read
// models (revoked grants): a process that projects cannot do its work then
// (its projectors retry, as in an outage), and must not report ready.
func Writable(pool *pgxpool.Pool) func(context.Context) error {
	tables := append(slices.Clone(ReadModelTables), "projection_checkpoints")
	return func(ctx context.Context) error {
		var ok bool
		var missing []string
		err := pool.QueryRow(ctx, `SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off',
  coalesce(array_agg(t ORDER BY t) FILTER (WHERE NOT (has_table_privilege(t, 'SELECT')
    AND has_table_privilege(t, 'INSERT') AND has_table_privilege(t, 'UPDATE'))), '{}')
FROM unnest($1::text[]) AS t`, tables).Scan(&ok, &missing)
		if err != nil {
			return fmt.Errorf("probe postgres: %w", err)
		}
		if !ok {
			return ErrReadOnly
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w on %s", ErrMissingGrants, strings.Join(missing, ", "))
		}
		return nil
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/projections"
)

// ReadModelTables are the tables a rebuild replaces: everything the
// projectors write except their checkpoints. Integrations, secrets, sync
// state and run records stay where they are.
var ReadModelTables = []string{
	"webhook_events", "transactions", "transaction_status_changes", "contacts", "documents", "tasks",
	"integration_metrics_hourly", "metrics_hourly_totals",
}

// liveTriggers re-point the triggers of moved tables at the live schema's
// functions: a moved table keeps its triggers, but they would still call
// the rebuild schema's copy of the function, which goes when that schema
// is dropped.
func liveTriggers(live string) []string {
	table := pgx.Identifier{live, "integration_metrics_hourly"}.Sanitize()
	return []string{
		"DROP TRIGGER IF EXISTS metrics_hourly_roll_up ON " + table,
		"CREATE TRIGGER metrics_hourly_roll_up AFTER INSERT OR UPDATE OR DELETE ON " + table +
			" FOR EACH ROW EXECUTE FUNCTION " + pgx.Identifier{live, "metrics_hourly_roll_up"}.Sanitize() + "()",
	}
}

// RebuildTarget creates rebuild schemas next to the live one (the pool's
// current schema) and swaps them in. It satisfies projections.RebuildTarget
// and is safe for concurrent use.
type RebuildTarget struct {
	pool *pgxpool.Pool
	live string

	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
	// migrate makes a new schema's tables (Migrate; tests make it fail).
	migrate func(context.Context, *pgxpool.Pool) error
}

var _ projections.RebuildTarget = (*RebuildTarget)(nil)

// NewRebuildTarget returns a target around the live schema of pool.
func NewRebuildTarget(ctx context.Context, pool *pgxpool.Pool) (*RebuildTarget, error) {
	live, err := CurrentSchema(ctx, pool)
	if err != nil {
		return nil, err
	}
	return &RebuildTarget{pool: pool, live: live, pools: map[string]*pgxpool.Pool{}, migrate: Migrate}, nil
}

// CurrentSchema is the schema pool's unqualified names resolve to.
func CurrentSchema(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var s *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&s); err != nil {
		return "", fmt.Errorf("current schema: %w", err)
	}
	if s == nil {
		return "", errors.New("current schema: no schema on the search_path exists")
	}
	return *s, nil
}

// LiveSchema is the schema the live read models are in.
func (t *RebuildTarget) LiveSchema() string { return t.live }

// Create implements projections.RebuildTarget; it never creates the live
// schema, one that exists is projections.ErrTargetExists, and one it made
// but could not finish it drops. The returned store commits with
// synchronous_commit off: a crash may lose its last transactions, which
// only matters before the swap, when the schema is thrown away anyway; the
// swap's own commit is durable and flushes everything before it.
func (t *RebuildTarget) Create(ctx context.Context, schema string) (projections.Store, error) {
	if schema == t.live {
		return nil, fmt.Errorf("create %s: %w", schema, projections.ErrInvalidTarget)
	}
	if _, err := t.pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		// A creation racing another of the same name fails on the
		// catalog's unique index rather than with duplicate_schema.
		if hasCode(err, codeDuplicateSchema, codeUniqueViolation) {
			err = fmt.Errorf("%w: %w", projections.ErrTargetExists, err)
		}
		return nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	// The schema is this call's from here: one it cannot finish is dropped,
	// or the next try would find it there (a request gone while it
	// migrated).
	fail := func(p *pgxpool.Pool, err error) (projections.Store, error) {
		if p != nil {
			p.Close()
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := t.Drop(dctx, schema); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop unfinished schema: %w", derr))
		}
		return nil, err
	}
	cfg := t.pool.Config().Copy()
	// Quoted: the schema was created under its exact name, which the live
	// schema's (DATABASE_URL's search_path="Tenant") may make mixed-case.
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cfg.MaxConns = 6
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fail(nil, fmt.Errorf("open schema %s: %w", schema, err))
	}
	if err := t.migrate(ctx, p); err != nil {
		return fail(p, err)
	}
	// Until Seal, the read-model tables keep only the indexes the
	// projector's statements need (primary keys and the unique keys of ON
	// CONFLICT): loading first and indexing once is cheaper than
	// maintaining every index row by row. (Unlogged tables made logged at
	// Seal measured slower: SET LOGGED rewrites every table.)
	if err := t.strip(ctx, p, schema); err != nil {
		return fail(p, err)
	}
	// Another run's pool registered under the name is left alone: it is
	// that run's to release (Release closes only the pool of its store).
	t.mu.Lock()
	t.pools[schema] = p
	t.mu.Unlock()
	return NewProjectionStore(p), nil
}

// strip drops the secondary indexes of schema's read-model tables,
// remembering them in rebuild_indexes for Seal.
func (t *RebuildTarget) strip(ctx context.Context, p *pgxpool.Pool, schema string) error {
	_, err := p.Exec(ctx, `CREATE TABLE rebuild_indexes AS SELECT indexname, indexdef FROM pg_indexes i
WHERE schemaname = current_schema() AND tablename = ANY($1) AND NOT EXISTS (
  SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))`, ReadModelTables)
	if err != nil {
		return fmt.Errorf("strip %s: %w", schema, err)
	}
	var names []string
	rows, err := p.Query(ctx, "SELECT indexname FROM rebuild_indexes")
	if err != nil {
		return fmt.Errorf("strip %s: %w", schema, err)
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("strip %s: %w", schema, err)
	}
	for _, n := range names {
		if _, err := p.Exec(ctx, "DROP INDEX "+pgx.Identifier{n}.Sanitize()); err != nil {
			return fmt.Errorf("strip %s: %w", schema, err)
		}
	}
	return nil
}

// Seal implements projections.RebuildTarget: it builds the indexes Create
// left out and gathers statistics.
func (t *RebuildTarget) Seal(ctx context.Context, schema string) error {
	t.mu.Lock()
	p := t.pools[schema]
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("seal %s: %w", schema, projections.ErrInvalidTarget)
	}
	rows, err := p.Query(ctx, "SELECT indexdef FROM rebuild_indexes")
	if err != nil {
		return fmt.Errorf("seal %s: %w", schema, err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("seal %s: %w", schema, err)
	}
	// Index builds run side by side, one connection each, with room to
	// sort a million rows in memory (the default 64 MB spills to disk) and
	// no parallel workers: two builds already fill two cores, and with
	// workers each the seal of a million events took 16–19 s instead of
	// 13 s (more processes than cores, sorting in pieces and merging).
	errs := make(chan error, max(len(defs), len(ReadModelTables)))
	sem := make(chan struct{}, 2)
	for _, def := range defs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			b := &pgx.Batch{}
			b.Queue("SELECT set_config('maintenance_work_mem', $1, true)", sealSortMemory)
			b.Queue("SELECT set_config('max_parallel_maintenance_workers', '0', true)")
			b.Queue(def)
			errs <- pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
		}()
	}
	for range defs {
		if err := <-errs; err != nil {
			return fmt.Errorf("seal %s: index: %w", schema, err)
		}
	}
	if _, err := p.Exec(ctx, "DROP TABLE rebuild_indexes"); err != nil {
		return fmt.Errorf("seal %s: %w", schema, err)
	}
	// Statistics, two tables at a time as well (after the indexes: those
	// on expressions have statistics of their own). The jsonb documents are
	// left out: no query filters on them, and sorting 30,000 sampled
	// documents per table was half the time ANALYZE took. Autovacuum
	// gathers the full statistics later, off the rebuild's path.
	for _, table := range ReadModelTables {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- analyzeScalars(ctx, p, table)
		}()
	}
	var failed error
	for range ReadModelTables {
		if err := <-errs; err != nil && failed == nil {
			failed = fmt.Errorf("seal %s: analyze: %w", schema, err)
		}
	}
	return failed
}

// analyzeScalars gathers the statistics of table's columns other than
// its jsonb ones.
func analyzeScalars(ctx context.Context, p *pgxpool.Pool, table string) error {
	rows, err := p.Query(ctx, `SELECT attname FROM pg_attribute
WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND atttypid <> 'jsonb'::regtype
ORDER BY attnum`, pgx.Identifier{table}.Sanitize())
	if err != nil {
		return err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return fmt.Errorf("analyze %s: no such table", table)
	}
	_, err = p.Exec(ctx, "ANALYZE "+pgx.Identifier{table}.Sanitize()+" ("+strings.Join(quoteAll(cols), ", ")+")")
	return err
}

// sealSortMemory is each index build's maintenance_work_mem.
const sealSortMemory = "256MB"

// Checkpoints implements projections.RebuildTarget.
func (t *RebuildTarget) Checkpoints(ctx context.Context, schema, name string) (map[projections.Partition]int64, error) {
	rows, err := t.pool.Query(ctx, `SELECT topic, "partition", next_offset FROM `+
		pgx.Identifier{schema, "projection_checkpoints"}.Sanitize()+` WHERE projection = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("checkpoints of %s in %s: %w", name, schema, err)
	}
	out := map[projections.Partition]int64{}
	var p projections.Partition
	var next int64
	_, err = pgx.ForEachRow(rows, []any{&p.Topic, &p.Partition, &next}, func() error {
		out[p] = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints of %s in %s: %w", name, schema, err)
	}
	return out, nil
}

// Release implements projections.RebuildTarget: it closes the pool Create
// opened for store, and forgets it unless another Create of the same name
// has replaced it since.
func (t *RebuildTarget) Release(store projections.Store) {
	s, ok := store.(*ProjectionStore)
	if !ok {
		return
	}
	t.mu.Lock()
	for schema, p := range t.pools {
		if p == s.pool {
			delete(t.pools, schema)
		}
	}
	t.mu.Unlock()
	s.pool.Close()
}

// Drop implements projections.RebuildTarget. It never drops the live
// schema, and closes no pool: the run that created one releases it.
func (t *RebuildTarget) Drop(ctx context.Context, schema string) error {
	if schema == "" || schema == t.live {
		return fmt.Errorf("drop %q: %w", schema, projections.ErrInvalidTarget)
	}
	if _, err := t.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	return nil
}

// Pause implements projections.RebuildTarget: it locks the live
// checkpoints table against writers. Every live projection transaction
// locks its checkpoints first, so each waits there (the ones in flight
// finish first) until the swap commits or aborts. Readers are not held.
func (t *RebuildTarget) Pause(ctx context.Context) (projections.Swap, error) {
	tx, err := t.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("pause live projections: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '30s'"); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("pause live projections: %w", err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE"); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("pause live projections: %w", err)
	}
	return &swap{t: t, tx: tx}, nil
}

type swap struct {
	t  *RebuildTarget
	tx pgx.Tx
}

// Commit implements projections.Swap: each read-model table of the live
// schema moves to retired and its rebuilt twin moves in, and the rebuilt
// checkpoints replace the live ones, all in the transaction that holds
// the pause. Readers wait for the commit and then see the rebuilt tables;
// none sees an empty or partial one.
func (s *swap) Commit(ctx context.Context, schema, retired string, names []string) error {
	live := s.t.live
	if schema == live || retired == live {
		_ = s.tx.Rollback(ctx)
		return fmt.Errorf("swap %s: %w", schema, projections.ErrInvalidTarget)
	}
	s.t.mu.Lock()
	if p := s.t.pools[schema]; p != nil {
		// No more writes into the rebuilt schema: its connections would
		// only hold locks the swap needs.
		p.Close()
		delete(s.t.pools, schema)
	}
	s.t.mu.Unlock()
	grants, err := s.grants(ctx, live, schema)
	if err != nil {
		_ = s.tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("swap %s: %w", schema, err)
	}
	stmts := append([]string{"CREATE SCHEMA " + pgx.Identifier{retired}.Sanitize()}, grants...)
	for _, table := range ReadModelTables {
		stmts = append(stmts,
			"ALTER TABLE "+pgx.Identifier{live, table}.Sanitize()+" SET SCHEMA "+pgx.Identifier{retired}.Sanitize(),
			"ALTER TABLE "+pgx.Identifier{schema, table}.Sanitize()+" SET SCHEMA "+pgx.Identifier{live}.Sanitize())
	}
	stmts = append(stmts, liveTriggers(live)...)
	for _, q := range stmts {
		if _, err := s.tx.Exec(ctx, q); err != nil {
			_ = s.tx.Rollback(context.WithoutCancel(ctx))
			return fmt.Errorf("swap %s: %w", schema, err)
		}
	}
	liveCp := pgx.Identifier{live, "projection_checkpoints"}.Sanitize()
	if _, err := s.tx.Exec(ctx, "DELETE FROM "+liveCp+" WHERE projection = ANY($1)", names); err != nil {
		_ = s.tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("swap %s: checkpoints: %w", schema, err)
	}
	if _, err := s.tx.Exec(ctx, "INSERT INTO "+liveCp+` (projection, topic, "partition", next_offset)
SELECT projection, topic, "partition", next_offset FROM `+pgx.Identifier{schema, "projection_checkpoints"}.Sanitize()+
		" WHERE projection = ANY($1)", names); err != nil {
		_ = s.tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("swap %s: checkpoints: %w", schema, err)
	}
	// Once every statement went through, the commit is sent whatever ctx
	// says: a cancellation in the middle of it would leave unknown whether
	// the swap happened.
	if err := s.tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("swap %s: commit: %w", schema, err)
	}
	return nil
}

// grants returns the GRANT statements that give the rebuilt tables of
// schema the privileges other roles hold on their live twins (analysts'
// SELECT, say), which stay with the tables the swap retires. Column
// privileges and row security policies are not carried over.
func (s *swap) grants(ctx context.Context, live, schema string) ([]string, error) {
	rows, err := s.tx.Query(ctx, `SELECT c.relname, a.privilege_type,
 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.is_grantable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) a
LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = $1 AND c.relname = ANY($2) AND a.grantee <> c.relowner
ORDER BY 1, 3, 2`, live, ReadModelTables)
	if err != nil {
		return nil, fmt.Errorf("grants of %s: %w", live, err)
	}
	var out []string
	var table, privilege, grantee string
	var grantable bool
	_, err = pgx.ForEachRow(rows, []any{&table, &privilege, &grantee, &grantable}, func() error {
		q := "GRANT " + privilege + " ON " + pgx.Identifier{schema, table}.Sanitize() + " TO " + grantee
		if grantable {
			q += " WITH GRANT OPTION"
		}
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("grants of %s: %w", live, err)
	}
	return out, nil
}

// Abort implements projections.Swap.
func (s *swap) Abort(ctx context.Context) error {
	if err := s.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("resume live projections: %w", err)
	}
	return nil
}

// RebuildRuns records rebuild runs in rebuild_runs, serialises full
// rebuilds with a session advisory lock keyed on the live schema, and
// claims the schema of a point-in-time build with one keyed on that
// schema's name (schemas are the database's, whatever live schema a run
// belongs to). A run is alive while its lock is held: the lock is its
// connection's and goes when its process dies. It satisfies
// projections.RebuildRuns and is safe for concurrent use.
type RebuildRuns struct {
	pool *pgxpool.Pool
}

var _ projections.RebuildRuns = (*RebuildRuns)(nil)

// NewRebuildRuns returns the run store of pool's schema.
func NewRebuildRuns(pool *pgxpool.Pool) *RebuildRuns { return &RebuildRuns{pool: pool} }

// rebuildLockID is the lock of full rebuilds of the live schema.
func rebuildLockID(schema string) int64 { return advisoryKey("rebuild", schema) }

// asOfLockID is the lock of a point-in-time build into schema.
func asOfLockID(schema string) int64 { return advisoryKey("as-of", schema) }

// activeStates are the states of a run still working, as stored.
var activeStates = []string{
	string(projections.StateBuilding), string(projections.StateSealing),
	string(projections.StateCatchingUp), string(projections.StatePaused),
}

// Claim implements projections.RebuildRuns: it takes the session advisory
// lock of schema on a connection of its own, held until release, and then
// sweeps the point-in-time builds that died (sweepAsOf).
func (s *RebuildRuns) Claim(ctx context.Context, schema string) (func(), error) {
	conn, release, ok, err := s.tryLock(ctx, asOfLockID(schema))
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", schema, err)
	}
	if !ok {
		return nil, fmt.Errorf("schema %s: %w", schema, projections.ErrTargetBusy)
	}
	if err := s.sweepAsOf(ctx, conn.Conn()); err != nil {
		release()
		return nil, fmt.Errorf("claim %s: %w", schema, err)
	}
	return release, nil
}

// tryLock takes the session advisory lock id on a connection of its own,
// held until release unlocks it and returns the connection. ok is false,
// and nothing held, when another session holds the lock.
func (s *RebuildRuns) tryLock(ctx context.Context, id int64) (conn *pgxpool.Conn, release func(), ok bool, err error) {
	conn, err = s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, nil, false, err
	}
	return conn, func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", id)
		conn.Release()
	}, true, nil
}

// sweepAsOf marks failed ("interrupted") every point-in-time build recorded
// active whose claim no one holds, its process having died, and drops the
// schema it left half-built unless a later run built into that schema.
// Each is handled holding its claim on conn (a claim conn holds already,
// such as the caller's own, it takes again), so that a build starting into
// the schema meanwhile is refused rather than dropped.
func (s *RebuildRuns) sweepAsOf(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT id, schema_name FROM rebuild_runs WHERE kind = $1 AND state = ANY($2) ORDER BY id`,
		string(projections.KindAsOf), activeStates)
	if err != nil {
		return fmt.Errorf("sweep point-in-time builds: %w", err)
	}
	type run struct {
		id     int64
		schema string
	}
	var runs []run
	var r run
	if _, err := pgx.ForEachRow(rows, []any{&r.id, &r.schema}, func() error {
		runs = append(runs, r)
		return nil
	}); err != nil {
		return fmt.Errorf("sweep point-in-time builds: %w", err)
	}
	if len(runs) == 0 {
		return nil
	}
	live, err := CurrentSchema(ctx, s.pool)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if err := s.sweepOne(ctx, conn, r.id, r.schema, live); err != nil {
			return fmt.Errorf("sweep point-in-time build %d into %s: %w", r.id, r.schema, err)
		}
	}
	return nil
}

func (s *RebuildRuns) sweepOne(ctx context.Context, conn *pgx.Conn, id int64, schema, live string) error {
	lock := asOfLockID(schema)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lock).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return nil // alive
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lock) }()
	// A schema whose indexes were restored (Seal drops rebuild_indexes)
	// is a finished copy whose run's last state write was lost: kept, and
	// its run marked done.
	var unsealed, present bool
	if schema != "" {
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
 EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'rebuild_indexes')`, schema).Scan(&present, &unsealed); err != nil {
			return err
		}
	}
	if present && !unsealed {
		_, err := conn.Exec(ctx, `UPDATE rebuild_runs SET state = 'done', finished_at = coalesce(finished_at, now()), updated_at = now()
WHERE id = $1 AND state = ANY($2)`, id, activeStates)
		return err
	}
	tag, err := conn.Exec(ctx, `UPDATE rebuild_runs SET state = 'failed', error = 'interrupted', finished_at = now(), updated_at = now()
WHERE id = $1 AND state = ANY($2)`, id, activeStates)
	if err != nil || tag.RowsAffected() == 0 || schema == "" || schema == live {
		return err
	}
	var later bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rebuild_runs WHERE kind = $1 AND schema_name = $2 AND id > $3)`,
		string(projections.KindAsOf), schema, id).Scan(&later); err != nil || later {
		return err
	}
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}

// Begin implements projections.RebuildRuns.
func (s *RebuildRuns) Begin(ctx context.Context, run projections.RebuildRun) (int64, []projections.RebuildRun, func(), error) {
	release := func() {}
	var stale []projections.RebuildRun
	if run.Kind == projections.KindRebuild {
		schema, err := CurrentSchema(ctx, s.pool)
		if err != nil {
			return 0, nil, nil, err
		}
		conn, unlock, ok, err := s.tryLock(ctx, rebuildLockID(schema))
		if err != nil {
			return 0, nil, nil, fmt.Errorf("begin rebuild: %w", err)
		}
		if !ok {
			return 0, nil, nil, projections.ErrRebuildRunning
		}
		release = unlock
		// Whoever left a run active died holding the lock.
		rows, err := s.pool.Query(ctx, `UPDATE rebuild_runs SET state = 'failed', error = 'interrupted', finished_at = now(), updated_at = now()
WHERE kind = 'rebuild' AND state = ANY($1) RETURNING id, schema_name`, activeStates)
		if err == nil {
			var r projections.RebuildRun
			_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Schema}, func() error {
				stale = append(stale, r)
				return nil
			})
		}
		if err == nil {
			err = s.sweepAsOf(ctx, conn.Conn())
		}
		if err != nil {
			release()
			return 0, nil, nil, fmt.Errorf("begin rebuild: stale runs: %w", err)
		}
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO rebuild_runs (kind, schema_name, as_of, state, started_at)
VALUES ($1, $2, $3, $4, $5) RETURNING id`, string(run.Kind), run.Schema, run.AsOf, string(run.State), run.StartedAt).Scan(&id)
	if err != nil {
		release()
		return 0, nil, nil, fmt.Errorf("begin %s: %w", run.Kind, err)
	}
	return id, stale, release, nil
}

// Update implements projections.RebuildRuns.
func (s *RebuildRuns) Update(ctx context.Context, r projections.RebuildRun) error {
	var errText *string
	if r.Error != "" {
		errText = &r.Error
	}
	_, err := s.pool.Exec(ctx, `UPDATE rebuild_runs SET schema_name = $2, state = $3, offsets_at_start = $4, applied = $5,
offsets_left = $6, events_per_second = $7, eta_ms = $8, paused_ms = $9, finished_at = $10, error = $11, updated_at = now()
WHERE id = $1`, r.ID, r.Schema, string(r.State), r.End, r.Progress.Applied, r.Progress.Left, r.Progress.Rate,
		r.Progress.ETA.Milliseconds(), r.Paused.Milliseconds(), r.FinishedAt, errText)
	if err != nil {
		return fmt.Errorf("update rebuild run %d: %w", r.ID, err)
	}
	return nil
}

// Latest returns the newest runs of a kind ("" for every kind), newest
// first.
func (s *RebuildRuns) Latest(ctx context.Context, of projections.RebuildKind, limit int) ([]projections.RebuildRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, schema_name, as_of, state, offsets_at_start, applied, offsets_left,
events_per_second, eta_ms, paused_ms, started_at, updated_at, finished_at, coalesce(error, '')
FROM rebuild_runs WHERE $2 = '' OR kind = $2 ORDER BY id DESC LIMIT $1`, limit, string(of))
	if err != nil {
		return nil, fmt.Errorf("rebuild runs: %w", err)
	}
	var out []projections.RebuildRun
	var r projections.RebuildRun
	var kind, state string
	var eta, paused int64
	var updated time.Time
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &kind, &r.Schema, &r.AsOf, &state, &r.End, &r.Progress.Applied, &r.Progress.Left,
		&r.Progress.Rate, &eta, &paused, &r.StartedAt, &updated, &r.FinishedAt, &r.Error}, func() error {
		r.Kind, r.State = projections.RebuildKind(kind), projections.RebuildState(state)
		r.Progress.ETA, r.Paused = time.Duration(eta)*time.Millisecond, time.Duration(paused)*time.Millisecond
		end := updated
		if r.FinishedAt != nil {
			end = *r.FinishedAt
		}
		r.Progress.Elapsed = end.Sub(r.StartedAt)
		out = append(out, r)
		r = projections.RebuildRun{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild runs: %w", err)
	}
	return out, nil
}

// ProjectionCheckpoints returns every live checkpoint with when it last
// moved.
func (s *RebuildRuns) ProjectionCheckpoints(ctx context.Context) ([]projections.CheckpointRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT projection, topic, "partition", next_offset, updated_at FROM projection_checkpoints
ORDER BY projection, topic, "partition"`)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	var out []projections.CheckpointRow
	var c projections.CheckpointRow
	_, err = pgx.ForEachRow(rows, []any{&c.Projection, &c.Topic, &c.Partition.Partition, &c.Next, &c.UpdatedAt}, func() error {
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	return out, nil
}

// LastErrors returns, per topic, the newest error of a FAILED event.
func (s *RebuildRuns) LastErrors(ctx context.Context) (map[string]projections.LastError, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (topic) topic, coalesce(error, ''), coalesce(failed_at, received_at), event_id, integration_id
FROM webhook_events WHERE status = 'FAILED' ORDER BY topic, failed_at DESC NULLS LAST`)
	if err != nil {
		return nil, fmt.Errorf("last errors: %w", err)
	}
	out := map[string]projections.LastError{}
	var topic string
	var e projections.LastError
	_, err = pgx.ForEachRow(rows, []any{&topic, &e.Error, &e.At, &e.EventID, &e.IntegrationID}, func() error {
		out[topic] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("last errors: %w", err)
	}
	return out, nil
}

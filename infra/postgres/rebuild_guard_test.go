package postgres

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/projections"
)

// newTestRebuildTarget returns a target around a fresh migrated schema,
// with one contact in the live read models.
func newTestRebuildTarget(t *testing.T) (*pgxpool.Pool, *RebuildTarget) {
	t.Helper()
	ctx := testContext(t)
	pool, schema := openTestSchema(t, nil)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	target, err := NewRebuildTarget(ctx, pool)
	if err != nil {
		t.Fatalf("new rebuild target: %v", err)
	}
	if target.LiveSchema() != schema {
		t.Fatalf("live schema %q, want %q", target.LiveSchema(), schema)
	}
	insertContact(t, pool, schema, "con_live")
	return pool, target
}

// insertContact adds contact id to the contacts table of schema.
func insertContact(t *testing.T, pool *pgxpool.Pool, schema, id string) {
	t.Helper()
	_, err := pool.Exec(testContext(t), `INSERT INTO `+pgx.Identifier{schema, "contacts"}.Sanitize()+`
(integration_id, id, softpro_created_at, softpro_updated_at, last_event_id, payload) VALUES ('int_a', $1, now(), now(), 'evt_1', '{}')`, id)
	if err != nil {
		t.Fatalf("insert contact %s into %s: %v", id, schema, err)
	}
}

// contactIDs returns the ids in the contacts table of schema.
func contactIDs(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT id FROM "+pgx.Identifier{schema, "contacts"}.Sanitize()+" ORDER BY id")
	if err != nil {
		t.Fatalf("contacts of %s: %v", schema, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("contacts of %s: %v", schema, err)
	}
	return ids
}

// assertLiveIntact fails the test unless every read-model table and the
// checkpoints of the live schema exist and the live contact is still
// there, and the live checkpoints take writes (no pause left behind).
func assertLiveIntact(t *testing.T, pool *pgxpool.Pool, live string) {
	t.Helper()
	ctx := testContext(t)
	for _, table := range append([]string{"projection_checkpoints"}, ReadModelTables...) {
		var found *string
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::text", pgx.Identifier{live, table}.Sanitize()).Scan(&found); err != nil {
			t.Fatalf("look up %s.%s: %v", live, table, err)
		}
		if found == nil {
			t.Errorf("live table %s.%s is gone", live, table)
		}
	}
	if ids := contactIDs(t, pool, live); len(ids) != 1 || ids[0] != "con_live" {
		t.Errorf("live contacts %v, want [con_live]", ids)
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '2s'"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{live, "projection_checkpoints"}.Sanitize()+
			` (projection, topic, "partition", next_offset) VALUES ('probe', 't', 0, 1)
ON CONFLICT (projection, topic, "partition") DO UPDATE SET next_offset = EXCLUDED.next_offset + 1`)
		return err
	})
	if err != nil {
		t.Errorf("live checkpoints take no writes: %v", err)
	}
}

// A rebuild never creates, drops or swaps away the live schema: each is
// refused with ErrInvalidTarget and the live read models stay as they
// were, with the live projectors resumed.
func TestRebuildTargetRefusesTheLiveSchema(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, target := newTestRebuildTarget(t)
	live := target.LiveSchema()

	if err := target.Drop(ctx, live); !errors.Is(err, projections.ErrInvalidTarget) {
		t.Errorf("Drop(live): %v, want ErrInvalidTarget", err)
	}
	assertLiveIntact(t, pool, live)
	if err := target.Drop(ctx, ""); !errors.Is(err, projections.ErrInvalidTarget) {
		t.Errorf("Drop(\"\"): %v, want ErrInvalidTarget", err)
	}
	assertLiveIntact(t, pool, live)
	if _, err := target.Create(ctx, live); !errors.Is(err, projections.ErrInvalidTarget) {
		t.Errorf("Create(live): %v, want ErrInvalidTarget", err)
	}
	assertLiveIntact(t, pool, live)

	rebuilt := live + "_rebuild_1"
	if _, err := target.Create(ctx, rebuilt); err != nil {
		t.Fatalf("create %s: %v", rebuilt, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := target.Drop(ctx, rebuilt); err != nil {
			t.Errorf("drop %s: %v", rebuilt, err)
		}
	})
	insertContact(t, pool, rebuilt, "con_rebuilt")
	names := []string{"contacts"}
	for _, tt := range []struct{ name, schema, retired string }{
		{name: "live swapped with itself", schema: live, retired: rebuilt + "_retired"},
		{name: "live retired", schema: rebuilt, retired: live},
	} {
		swap, err := target.Pause(ctx)
		if err != nil {
			t.Fatalf("%s: pause: %v", tt.name, err)
		}
		if err := swap.Commit(ctx, tt.schema, tt.retired, names); !errors.Is(err, projections.ErrInvalidTarget) {
			t.Errorf("%s: Commit(%s, %s): %v, want ErrInvalidTarget", tt.name, tt.schema, tt.retired, err)
		}
		_ = swap.Abort(ctx)
		assertLiveIntact(t, pool, live)
		if ids := contactIDs(t, pool, rebuilt); len(ids) != 1 || ids[0] != "con_rebuilt" {
			t.Errorf("%s: rebuilt contacts %v, want [con_rebuilt] left where they were", tt.name, ids)
		}
	}
}

// checkpointRows returns the rows of schema's projection_checkpoints,
// keyed by projection, topic and partition.
func checkpointRows(t *testing.T, pool *pgxpool.Pool, schema string) map[checkpointKey]int64 {
	t.Helper()
	rows, err := pool.Query(testContext(t), `SELECT projection, topic, "partition", next_offset FROM `+
		pgx.Identifier{schema, "projection_checkpoints"}.Sanitize())
	if err != nil {
		t.Fatalf("checkpoints of %s: %v", schema, err)
	}
	out := map[checkpointKey]int64{}
	var k checkpointKey
	var next int64
	if _, err := pgx.ForEachRow(rows, []any{&k.projection, &k.topic, &k.partition, &next}, func() error {
		out[k] = next
		return nil
	}); err != nil {
		t.Fatalf("checkpoints of %s: %v", schema, err)
	}
	return out
}

type checkpointKey struct {
	projection, topic string
	partition         int32
}

// insertCheckpoints writes cps into schema's projection_checkpoints.
func insertCheckpoints(t *testing.T, pool *pgxpool.Pool, schema string, cps map[checkpointKey]int64) {
	t.Helper()
	for k, next := range cps {
		_, err := pool.Exec(testContext(t), `INSERT INTO `+pgx.Identifier{schema, "projection_checkpoints"}.Sanitize()+
			` (projection, topic, "partition", next_offset) VALUES ($1, $2, $3, $4)`, k.projection, k.topic, k.partition, next)
		if err != nil {
			t.Fatalf("insert checkpoint %+v into %s: %v", k, schema, err)
		}
	}
}

// The swap moves the rebuilt read models in and hands the rebuilt
// checkpoints of the projections it replaces to the live projectors: their
// live checkpoints are exactly the rebuilt ones afterwards (a live
// partition the rebuild has none for loses its own), while the checkpoints
// of other projections stay as they were.
func TestRebuildSwapHandsOverTheRebuiltCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, target := newTestRebuildTarget(t)
	live := target.LiveSchema()
	rebuilt, retired := live+"_rebuild_7", live+"_rebuild_7_retired"

	insertCheckpoints(t, pool, live, map[checkpointKey]int64{
		{"contacts", "softpro.contacts", 0}: 5,
		{"contacts", "softpro.contacts", 1}: 7,
		{"tasks", "softpro.tasks", 0}:       3,
		{"other", "softpro.other", 0}:       11,
	})
	if _, err := target.Create(ctx, rebuilt); err != nil {
		t.Fatalf("create %s: %v", rebuilt, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{retired, rebuilt} {
			if err := target.Drop(ctx, s); err != nil {
				t.Errorf("drop %s: %v", s, err)
			}
		}
	})
	rebuiltCps := map[checkpointKey]int64{
		{"contacts", "softpro.contacts", 0}: 50,
		{"contacts", "softpro.contacts", 2}: 9,
		{"tasks", "softpro.tasks", 0}:       40,
		{"tasks", "softpro.tasks", 3}:       2,
		// Not among the projections swapped: stays in the rebuild schema.
		{"other", "softpro.other", 0}: 99,
	}
	insertCheckpoints(t, pool, rebuilt, rebuiltCps)
	insertContact(t, pool, rebuilt, "con_rebuilt")
	if err := target.Seal(ctx, rebuilt); err != nil {
		t.Fatalf("seal: %v", err)
	}
	// An analyst's role reads the live contacts, and may pass that on for
	// the audit; it keeps both on the rebuilt tables.
	analyst := randomName(t, "analyst_")
	for _, q := range []string{"CREATE ROLE " + analyst, "GRANT SELECT ON " + pgx.Identifier{live, "contacts"}.Sanitize() + " TO " + analyst,
		"GRANT SELECT ON " + pgx.Identifier{live, "webhook_events"}.Sanitize() + " TO " + analyst + " WITH GRANT OPTION"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP OWNED BY "+analyst)
		_, _ = pool.Exec(context.Background(), "DROP ROLE "+analyst)
	})

	swap, err := target.Pause(ctx)
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := swap.Commit(ctx, rebuilt, retired, []string{"contacts", "tasks"}); err != nil {
		t.Fatalf("commit: %v", err)
	}

	want := maps.Clone(rebuiltCps)
	want[checkpointKey{"other", "softpro.other", 0}] = 11
	if got := checkpointRows(t, pool, live); !maps.Equal(got, want) {
		t.Errorf("live checkpoints after the swap\n%v,\nwant\n%v", got, want)
	}
	for _, name := range []string{"contacts", "tasks"} {
		got, err := target.Checkpoints(ctx, live, name)
		if err != nil {
			t.Fatalf("checkpoints of %s: %v", name, err)
		}
		wantOf := map[projections.Partition]int64{}
		for k, next := range rebuiltCps {
			if k.projection == name {
				wantOf[projections.Partition{Topic: k.topic, Partition: k.partition}] = next
			}
		}
		if !maps.Equal(got, wantOf) {
			t.Errorf("live checkpoints of %s %v, want %v", name, got, wantOf)
		}
	}
	if ids := contactIDs(t, pool, live); len(ids) != 1 || ids[0] != "con_rebuilt" {
		t.Errorf("live contacts after the swap %v, want the rebuilt [con_rebuilt]", ids)
	}
	for _, c := range []struct{ table, privilege string }{{"contacts", "SELECT"}, {"webhook_events", "SELECT WITH GRANT OPTION"}} {
		var has bool
		if err := pool.QueryRow(ctx, "SELECT has_table_privilege($1, $2, $3)", analyst, pgx.Identifier{live, c.table}.Sanitize(), c.privilege).Scan(&has); err != nil || !has {
			t.Errorf("%s holds %s on the rebuilt %s: %v (%v)", analyst, c.privilege, c.table, has, err)
		}
	}
	if ids := contactIDs(t, pool, retired); len(ids) != 1 || ids[0] != "con_live" {
		t.Errorf("retired contacts %v, want the replaced [con_live]", ids)
	}
}

// Create leaves no schema it could not finish, which would refuse the next
// try as existing; a schema that existed before is refused with
// ErrTargetExists and left as it was.
func TestRebuildTargetCreateLeavesNoUnfinishedSchema(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, target := newTestRebuildTarget(t)
	schemaExists := func(name string) bool {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	// A migration that fails after the schema was made.
	unfinished := randomName(t, "unfinished_")
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{unfinished}.Sanitize()+" CASCADE")
	})
	failing := &RebuildTarget{pool: pool, live: target.LiveSchema(), pools: map[string]*pgxpool.Pool{},
		migrate: func(context.Context, *pgxpool.Pool) error { return errors.New("migration failed") }}
	if _, err := failing.Create(ctx, unfinished); err == nil || errors.Is(err, projections.ErrTargetExists) {
		t.Fatalf("create %s: %v, want the migration's error", unfinished, err)
	}
	if schemaExists(unfinished) {
		t.Fatalf("create %s failed but left the schema", unfinished)
	}

	// A mixed-case name (the rebuild schema of a live schema named so)
	// is created and migrated under its exact name.
	mixed := randomName(t, "Tenant_")
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{mixed}.Sanitize()+" CASCADE")
	})
	store, err := target.Create(ctx, mixed)
	if err != nil {
		t.Fatalf("create %s: %v", mixed, err)
	}
	if err := target.Seal(ctx, mixed); err != nil {
		t.Fatalf("seal %s: %v", mixed, err)
	}
	target.Release(store)
	var found *string
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::text", pgx.Identifier{mixed, "contacts"}.Sanitize()).Scan(&found); err != nil || found == nil {
		t.Fatalf("%s.contacts after create: %v %v", mixed, found, err)
	}

	existing := randomName(t, "existing_")
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+existing+" CASCADE") })
	if _, err := target.Create(ctx, existing); !errors.Is(err, projections.ErrTargetExists) {
		t.Fatalf("create %s that exists: %v, want ErrTargetExists", existing, err)
	}
	if !schemaExists(existing) {
		t.Fatalf("create %s that exists dropped it", existing)
	}
}

// Two creations of one schema at once: the one that finds the other's
// schema not yet committed fails on the catalog's unique index (23505),
// not with duplicate_schema, and must still be ErrTargetExists (409), not
// an internal error. The race is made certain by holding the first
// creation's transaction open until the second waits on it.
func TestCreateRacingAnotherCreateIsTargetExists(t *testing.T) {
	pool, target := newTestRebuildTarget(t)
	ctx := testContext(t)
	schema := target.LiveSchema() + "_race"
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	first, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(context.Background()) }()
	if _, err := first.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := target.Create(ctx, schema)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query = $1)`, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second CREATE SCHEMA never waited on the first")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, projections.ErrTargetExists) {
		t.Fatalf("create racing another: %v, want ErrTargetExists", err)
	}
}

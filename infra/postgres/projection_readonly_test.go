package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// A database that takes no writes (a standby during a failover, a
// read-only switch) is the database's fault: projecting against it fails
// with a transient error, retried, never the events' own, which would send
// every event to the poison queue.
func TestProjectingIntoAReadOnlyDatabaseIsTransient(t *testing.T) {
	t.Parallel()
	pool, schema := openTestSchema(t, nil)
	if err := Migrate(testContext(t), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	ro := readOnlyPool(t, schema)
	p := projections.NewProjector("test", NewProjectionStore(ro), nil)
	_, err := p.Apply(testContext(t), rec(domain.TopicTransactions, 0, 0, "int_a", "evt_1", domain.TransactionCreated, tBase, `{"id":"txn_1"}`))
	if err == nil || !projections.IsTransient(err) {
		t.Fatalf("Apply on a read-only database: %v, want a transient error", err)
	}
}

// The readiness probe of a process that projects fails on a database that
// takes no writes, which a ping does not see.
func TestWritableProbe(t *testing.T) {
	t.Parallel()
	pool, schema := openTestSchema(t, nil)
	if err := Migrate(testContext(t), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := Writable(pool)(testContext(t)); err != nil {
		t.Fatalf("Writable on a writable database: %v", err)
	}
	ro := readOnlyPool(t, schema)
	if err := ro.Ping(testContext(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := Writable(ro)(testContext(t)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Writable on a read-only database: %v, want ErrReadOnly", err)
	}
}

// readOnlyPool opens schema with every transaction read-only, as a standby
// or a database with writes switched off answers.
func readOnlyPool(t *testing.T, schema string) *pgxpool.Pool {
	t.Helper()
	ro, err := Open(testContext(t), withParams(t, testDatabaseURL(), map[string]string{
		"search_path": schema, "default_transaction_read_only": "on",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ro.Close)
	return ro
}

// The readiness probe of a process that projects fails, naming the table,
// when its role may no longer write a read model (a revoked grant), which a
// ping does not see either.
func TestWritableProbeSeesRevokedGrants(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	schema, role, as, q := projectorRole(t)
	if err := Writable(as)(ctx); err != nil {
		t.Fatalf("Writable with every grant: %v", err)
	}
	q("REVOKE INSERT ON " + schema + ".webhook_events FROM " + role)
	err := Writable(as)(ctx)
	if !errors.Is(err, ErrMissingGrants) || !strings.Contains(err.Error(), "webhook_events") {
		t.Fatalf("Writable after INSERT on webhook_events was revoked: %v, want ErrMissingGrants naming it", err)
	}
}

// projectorRole migrates a fresh schema and opens a pool on it as a new
// role with the grants a projecting process has (usage, and select, insert
// and update on every table); q runs SQL as the owner, to revoke them.
func projectorRole(t *testing.T) (schema, role string, as *pgxpool.Pool, q func(sql string)) {
	t.Helper()
	ctx := testContext(t)
	pool, schema := openTestSchema(t, nil)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	role = randomName(t, "projector_")
	q = func(sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q("CREATE ROLE " + role + " LOGIN")
	t.Cleanup(func() {
		_, _ = pool.Exec(context.WithoutCancel(ctx), "DROP OWNED BY "+role)
		_, _ = pool.Exec(context.WithoutCancel(ctx), "DROP ROLE "+role)
	})
	q("GRANT USAGE ON SCHEMA " + schema + " TO " + role)
	q("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA " + schema + " TO " + role)
	u, err := url.Parse(withParams(t, testDatabaseURL(), map[string]string{"search_path": schema}))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	as, err = Open(ctx, u.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	return schema, role, as, q
}

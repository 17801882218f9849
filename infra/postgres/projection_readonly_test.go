package postgres

import (
	"errors"
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

package tests

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A rebuild that died before it recorded its schema's name (its run row
// holds an empty name) still left a schema of the name its id gives: the
// next rebuild drops it, as it drops any interrupted run's.
func TestRebuildDropsTheSchemaOfARunThatDiedBeforeNamingIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	fixtureIntegration(t, e, db, "evt")
	var id int64
	if err := db.QueryRow(t.Context(), `INSERT INTO rebuild_runs (kind, schema_name, state, started_at)
VALUES ('rebuild', '', 'building', now()) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	orphan := fmt.Sprintf("test_%s_rebuild_%d", e.ns, id)
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, orphan) })
	if _, err := db.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{orphan}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.recoveryTools().Rebuilder.Rebuild(t.Context()); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if got := queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, orphan); got != "0" {
		t.Fatalf("schema %s of the interrupted run still exists", orphan)
	}
	if got := queryString(t, db, `SELECT state FROM rebuild_runs WHERE id = $1`, id); got != "failed" {
		t.Fatalf("interrupted run recorded %s, want failed", got)
	}
}

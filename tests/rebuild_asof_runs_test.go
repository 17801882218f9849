package tests

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// sealHeldTarget holds a point-in-time build at its seal, its bulk
// loaded, until release is closed; sealing is closed when it gets there.
type sealHeldTarget struct {
	*postgres.RebuildTarget
	sealing chan struct{}
	once    *sync.Once
	release chan struct{}
}

func (h sealHeldTarget) Seal(ctx context.Context, schema string) error {
	h.once.Do(func() { close(h.sealing) })
	<-h.release
	return h.RebuildTarget.Seal(ctx, schema)
}

// heldAsOf starts a point-in-time build into schema over tools' own target
// (so in this process, sharing its pools) and holds it at its seal; it
// returns once the build is there, with a function that lets it finish
// and returns how it ended.
func heldAsOf(t *testing.T, tools *app.RecoveryTools, schema string) func() (projections.RebuildRun, error) {
	t.Helper()
	h := sealHeldTarget{RebuildTarget: tools.Target, sealing: make(chan struct{}), once: &sync.Once{}, release: make(chan struct{})}
	rb, err := projections.NewRebuilder(projections.RebuildConfig{LiveSchema: tools.Target.LiveSchema(), Names: app.ProjectionNames()},
		h, tools.Runs, tools.Log)
	if err != nil {
		t.Fatal(err)
	}
	start, err := rb.StartAsOf(t.Context(), time.Now(), schema, false)
	if err != nil {
		t.Fatalf("as-of into %s: %v", schema, err)
	}
	type result struct {
		run projections.RebuildRun
		err error
	}
	done := make(chan result, 1)
	go func() {
		run, err := start.Execute(context.WithoutCancel(t.Context()))
		done <- result{run, err}
	}()
	select {
	case <-h.sealing:
	case r := <-done:
		t.Fatalf("as-of into %s ended before its seal: %+v %v", schema, r.run, r.err)
	case <-time.After(time.Minute):
		t.Fatalf("as-of into %s did not reach its seal", schema)
	}
	var once sync.Once
	var r result
	return func() (projections.RebuildRun, error) {
		once.Do(func() {
			close(h.release)
			r = <-done
		})
		return r.run, r.err
	}
}

// A point-in-time build into a schema another one is still building into
// is refused (409 over HTTP, an error on the command line and from the
// Rebuilder), with replace as without: replace drops a finished copy,
// never a running build's. The running build is not disturbed and ends
// done with its schema whole; then replace is accepted.
func TestAsOfIntoTheSchemaOfARunningBuildIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := dumpWithoutMetrics(readModelDump(t, db, id))
	tools := e.recoveryTools()
	schema := "asof_busy_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, schema) })
	finish := heldAsOf(t, tools, schema)
	t.Cleanup(func() { _, _ = finish() })

	asOf := time.Now().UTC().Format(time.RFC3339)
	for _, body := range []map[string]any{{"asOf": asOf, "schema": schema, "replace": true}, {"asOf": asOf, "schema": schema}} {
		statuses, raws := e.rebuildStarts(body)
		if code, msg := errCode(raws[0]); statuses[0] != http.StatusConflict || code != "CONFLICT" || !strings.Contains(msg, "running") {
			t.Fatalf("as-of %v while a build into %s runs: %d %s, want 409 saying one is running", body, schema, statuses[0], raws[0])
		}
	}
	// In this process, over the target the running build writes through.
	if _, err := tools.Rebuilder.StartAsOf(t.Context(), time.Now(), schema, true); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("as-of with replace into %s while a build runs into it: %v, want refused", schema, err)
	}
	e.cliRefused("running", "rebuild", "--as-of", "1m", "--schema", schema, "--replace")

	run, err := finish()
	if err != nil || run.State != projections.StateDone {
		t.Fatalf("the running build: %+v, %v; want done", run, err)
	}
	copied := e.dbAt(withSchema(t, sharedServices(t).databaseURL, schema))
	if got := dumpOf(t, copied, id, false); got != want {
		t.Fatalf("copy of the running build:\n got %s\nwant %s", got, want)
	}
	if got := queryString(t, db, `SELECT state FROM rebuild_runs WHERE id = $1`, run.ID); got != "done" {
		t.Fatalf("the running build recorded %s", got)
	}
	statuses, raws := e.rebuildStarts(map[string]any{"asOf": asOf, "schema": schema, "replace": true})
	if statuses[0] != http.StatusAccepted {
		t.Fatalf("replace once the build is done: %d %s", statuses[0], raws[0])
	}
	e.waitRun(raws[0])
}

// A point-in-time build whose process died leaves its run recorded
// building and its schema half-built: the next point-in-time build (into
// that schema or another) and the next rebuild mark it failed and drop the
// schema, so that no one queries it and its name is free without replace.
// A build still running is left alone, and so is a schema a later build
// made its own.
func TestAsOfBuildThatDiedIsFailedAndItsSchemaDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	ctx := t.Context()
	fixtureIntegration(t, e, db, "evt")
	tools := e.recoveryTools()
	url := sharedServices(t).databaseURL
	// died records an as-of run into schema that died building it (in
	// state), leaving the schema with a table.
	died := func(schema, state string) int64 {
		t.Helper()
		t.Cleanup(func() { dropSchema(url, schema) })
		var id int64
		if err := db.QueryRow(ctx, `INSERT INTO rebuild_runs (kind, schema_name, as_of, state, started_at)
VALUES ('as-of', $1, now(), $2, now()) RETURNING id`, schema, state).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"transactions", "rebuild_indexes"} { // unsealed
			if _, err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+pgx.Identifier{schema, table}.Sanitize()+" (id text)"); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	exists := func(schema string) bool {
		t.Helper()
		return queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema) == "1"
	}
	state := func(id int64) string {
		t.Helper()
		return queryString(t, db, `SELECT state, coalesce(error, '') FROM rebuild_runs WHERE id = $1`, id)
	}

	running := "asof_alive_" + e.ns
	t.Cleanup(func() { dropSchema(url, running) })
	finish := heldAsOf(t, tools, running)
	t.Cleanup(func() { _, _ = finish() })
	runningID := queryString(t, db, `SELECT id FROM rebuild_runs WHERE schema_name = $1`, running)

	same := "asof_dead_" + e.ns
	sameID := died(same, "building")
	other := "asof_dead_other_" + e.ns
	otherID := died(other, "sealing")
	// A build died into kept, and a later one built it again and is done:
	// kept is the later one's.
	kept := "asof_kept_" + e.ns
	keptDead := died(kept, "building")
	// A build that sealed its copy and lost its last state write: the
	// copy is whole, kept, and its run done.
	sealed := "asof_sealed_" + e.ns
	sealedID := died(sealed, "sealing")
	if _, err := db.Exec(ctx, "DROP TABLE "+pgx.Identifier{sealed, "rebuild_indexes"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO rebuild_runs (kind, schema_name, as_of, state, started_at, finished_at)
VALUES ('as-of', $1, now(), 'done', now(), now())`, kept); err != nil {
		t.Fatal(err)
	}

	// Into the dead build's own schema, without replace.
	asOf := time.Now().UTC().Format(time.RFC3339)
	statuses, raws := e.rebuildStarts(map[string]any{"asOf": asOf, "schema": same})
	if statuses[0] != http.StatusAccepted {
		t.Fatalf("as-of into %s, left by a build that died: %d %s, want 202", same, statuses[0], raws[0])
	}
	e.waitRun(raws[0])
	for _, id := range []int64{sameID, otherID, keptDead} {
		if got := state(id); got != "failed interrupted" {
			t.Errorf("run %d that died: %q, want failed interrupted", id, got)
		}
	}
	if exists(other) {
		t.Errorf("schema %s of a build that died is still there", other)
	}
	if got := state(sealedID); got != "done " || !exists(sealed) {
		t.Errorf("run %d whose copy was sealed: %q, schema kept %v; want done and kept", sealedID, got, exists(sealed))
	}
	if !exists(kept) {
		t.Errorf("schema %s, built again after the build that died, was dropped", kept)
	}
	if got := queryString(t, db, `SELECT state FROM rebuild_runs WHERE id = $1`, mustInt(runningID)); !projections.RebuildState(got).Active() {
		t.Errorf("the running build was recorded %s", got)
	}
	if !exists(running) {
		t.Errorf("schema %s of the running build was dropped", running)
	}

	// A full rebuild sweeps them too.
	gone := "asof_dead_rb_" + e.ns
	goneID := died(gone, "building")
	if _, err := tools.Rebuilder.Rebuild(ctx); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if got := state(goneID); got != "failed interrupted" || exists(gone) {
		t.Errorf("after a rebuild, the build that died into %s: %q, schema there: %v", gone, got, exists(gone))
	}
	if run, err := finish(); err != nil || run.State != projections.StateDone || !exists(running) {
		t.Fatalf("the running build: %+v, %v; want done with its schema", run, err)
	}
}

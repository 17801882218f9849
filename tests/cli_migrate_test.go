package tests

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// migrate creates the schema DATABASE_URL names and applies every
// migration to it; on a migrated schema it changes nothing.
func TestCLIMigrateCreatesTheSchemaAndIsIdempotent(t *testing.T) {
	t.Parallel()
	s := sharedServices(t)
	bin := softprohubBinary(t)
	schema := "cli_migrate_" + randomID(4)
	t.Cleanup(func() { dropSchema(s.databaseURL, schema) })
	migrate := func(databaseURL string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"migrate"}, args...)...)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	db := (&Env{t: t}).dbAt(s.databaseURL)
	// What the schema holds: its tables, columns and indexes, and the
	// migrations recorded.
	shape := func() string {
		return queryString(t, db, `SELECT (SELECT count(*) FROM information_schema.columns WHERE table_schema = $1),
			(SELECT count(*) FROM pg_indexes WHERE schemaname = $1),
			(SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = $1)`, schema)
	}
	applied := func() string {
		return queryString(t, db, `SELECT count(*), max(version_id), max(id) FROM `+schema+`.goose_db_version`)
	}

	url := withSchema(t, s.databaseURL, schema)
	if out, err := migrate(url); err != nil || out != "" {
		t.Fatalf("migrate of a new schema: %v\n%s", err, out)
	}
	first, versions := shape(), applied()
	for _, table := range []string{"softpro_integrations", "webhook_events", "transactions", "projection_checkpoints", "sync_runs", "rebuild_runs"} {
		if !strings.Contains(","+first+",", ","+table+",") {
			t.Fatalf("migrated schema lacks %s: %s", table, first)
		}
	}
	if out, err := migrate(url); err != nil || out != "" {
		t.Fatalf("migrate of a migrated schema: %v\n%s", err, out)
	}
	if again := shape(); again != first {
		t.Fatalf("migrating again changed the schema:\n%s\nto\n%s", first, again)
	}
	if again := applied(); again != versions {
		t.Fatalf("migrating again recorded migrations: %s, then %s", versions, again)
	}

	for _, c := range []struct {
		url, args, want string
	}{
		{"postgres://postgres@127.0.0.1:5432/%zz", "", "invalid database URL"},
		{"postgres://postgres@127.0.0.1:1/test?connect_timeout=2", "", "open postgres"},
		{url, "now", `unknown command "now"`},
	} {
		out, err := migrate(c.url, strings.Fields(c.args)...)
		if err == nil || !strings.HasPrefix(out, "softprohub: ") || !strings.Contains(out, c.want) {
			t.Errorf("migrate %s of %s: %v\n%s\nwant a failure saying %q", c.args, c.url, err, out, c.want)
		}
	}
}

package postgres

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestOpenCreatesSchemaFromSearchPath(t *testing.T) {
	t.Parallel()
	pool, schema := openTestSchema(t, nil)
	var current *string
	if err := pool.QueryRow(testContext(t), "SELECT current_schema()").Scan(&current); err != nil {
		t.Fatal(err)
	}
	if current == nil || *current != schema {
		t.Fatalf("current_schema() = %v, want %q", current, schema)
	}
}

func TestOpenCreatesMissingDatabase(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	name := randomName(t, "softprohub_test_")
	u, err := url.Parse(testDatabaseURL())
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL is not a URL: %v", err)
	}
	u.Path = "/" + name
	dbURL := u.String()
	u.Path = "/postgres"
	adminURL := u.String()

	if pool, err := Open(ctx, dbURL, false); err == nil {
		pool.Close()
		t.Fatalf("Open(createIfMissing=false) of missing database %s succeeded", name)
	}

	pool, err := Open(ctx, dbURL, true)
	if err != nil {
		t.Fatalf("Open(createIfMissing=true): %v (is Postgres reachable? set TEST_DATABASE_URL)", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	var got string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != name {
		t.Fatalf("current_database() = %q, want %q", got, name)
	}
	// A second open finds it and does not fail.
	again, err := Open(ctx, dbURL, true)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	again.Close()
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	pool, schema := openTestSchema(t, nil)
	ctx := testContext(t)
	for i := range 2 {
		if err := Migrate(ctx, pool); err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
	}
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1
		AND tablename IN ('softpro_integrations', 'integration_secrets', 'goose_db_version')`, schema).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("found %d of 3 tables in schema %s", n, schema)
	}
	var applied int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Fatalf("version 1 recorded %d times, want once", applied)
	}
}

func TestMigrateConcurrentlyInOneSchema(t *testing.T) {
	t.Parallel()
	pool, _ := openTestSchema(t, nil)
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = Migrate(ctx, pool) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
}

func TestFirstSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{name: "empty", in: "", want: ""},
		{name: "one", in: "tenant_a", want: "tenant_a"},
		{name: "list", in: " tenant_a , public", want: "tenant_a"},
		{name: "folds case", in: "Tenant", want: "tenant"},
		{name: "quoted keeps case", in: `"My""Schema", public`, want: `My"Schema`},
		{name: "user", in: `"$user", public`, want: ""},
		{name: "catalog", in: "pg_catalog", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := firstSchema(tc.in); got != tc.want {
				t.Fatalf("firstSchema(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// Audit ids are UUIDv7: version 7, and a row inserted later sorts after an
// earlier one (their first 48 bits are the insert's Unix milliseconds).
func TestAuditIdsAreTimeOrdered(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, nil)
	ctx := testContext(t)
	insert := func(eventID string) string {
		t.Helper()
		var id string
		err := pool.QueryRow(ctx, `INSERT INTO webhook_events (integration_id, event_id, event_type, payload, status, source, topic, "partition", "offset")
VALUES ('int_a', $1, 'transaction.created', '{}', 'RECEIVED', 'webhook', 't', 0, 0) RETURNING id::text`, eventID).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	before := time.Now().UnixMilli()
	first := insert("e1")
	time.Sleep(3 * time.Millisecond)
	second := insert("e2")
	for _, id := range []string{first, second} {
		if id[14] != '7' {
			t.Fatalf("id %s is not version 7", id)
		}
		if v := id[19]; v != '8' && v != '9' && v != 'a' && v != 'b' {
			t.Fatalf("id %s has not the RFC 4122 variant", id)
		}
	}
	if second <= first {
		t.Fatalf("later id %s sorts before earlier %s", second, first)
	}
	ms, err := strconv.ParseInt(strings.ReplaceAll(first[:13], "-", ""), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if ms < before-1000 || ms > time.Now().UnixMilli()+1000 {
		t.Fatalf("id %s holds %d ms, want about %d", first, ms, before)
	}
}

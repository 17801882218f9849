package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const defaultTestDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDatabaseURL is the server and database the tests use; each test works
// in a schema of its own.
func testDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultTestDatabaseURL
}

func randomName(t *testing.T, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// withParams returns base with the query parameters in params set.
func withParams(t *testing.T, base string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL is not a URL: %v", err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openTestSchema opens a pool whose search_path is a fresh schema, which is
// dropped when the test ends. extra adds URL parameters.
func openTestSchema(t *testing.T, extra map[string]string) (*pgxpool.Pool, string) {
	t.Helper()
	schema := randomName(t, "test_")
	params := map[string]string{"search_path": schema}
	for k, v := range extra {
		params[k] = v
	}
	ctx := testContext(t)
	pool, err := Open(ctx, withParams(t, testDatabaseURL(), params), false)
	if err != nil {
		t.Fatalf("Postgres is needed: set TEST_DATABASE_URL (now %q): %v", redacted(testDatabaseURL()), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		pool.Close()
	})
	return pool, schema
}

// migratedTestSchema is openTestSchema with the migrations applied.
func migratedTestSchema(t *testing.T, extra map[string]string) *pgxpool.Pool {
	t.Helper()
	pool, _ := openTestSchema(t, extra)
	if err := Migrate(testContext(t), pool); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return pool
}

// redacted hides a password in a URL for messages.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

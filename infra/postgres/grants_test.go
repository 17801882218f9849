package postgres

import (
	"context"
	"net/url"
	"testing"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// A role whose grants were revoked (a DBA's REVOKE, a migration that forgot
// the grants) is the database's fault, as an outage is: projecting fails
// with a transient error, retried until the grants come back, never a
// permanent one, which would poison every event.
func TestProjectingWithRevokedGrantsIsTransient(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, schema := openTestSchema(t, nil)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	role := randomName(t, "projector_")
	q := func(sql string) {
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
	as, err := Open(ctx, u.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)

	q("REVOKE INSERT ON " + schema + ".webhook_events FROM " + role)
	p := projections.NewProjector("test", NewProjectionStore(as), nil)
	r := rec(domain.TopicTransactions, 0, 0, "int_a", "evt_1", domain.TransactionCreated, tBase, `{"id":"txn_1"}`)
	_, err = p.Apply(ctx, r)
	if err == nil || !projections.IsTransient(err) || projections.IsPermanent(err) {
		t.Fatalf("Apply after INSERT on webhook_events was revoked: %v, want a transient error, not a permanent one", err)
	}

	// The grant comes back: the same record, retried, projects.
	q("GRANT INSERT ON " + schema + ".webhook_events TO " + role)
	p = projections.NewProjector("test", NewProjectionStore(as), nil)
	if _, err := p.Apply(ctx, r); err != nil {
		t.Fatalf("Apply after the grant came back: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events WHERE event_id = 'evt_1'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("webhook_events rows for evt_1 after the retry: %d, want 1", n)
	}
}

package postgres

import (
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
	schema, role, as, q := projectorRole(t)

	q("REVOKE INSERT ON " + schema + ".webhook_events FROM " + role)
	p := projections.NewProjector("test", NewProjectionStore(as), nil)
	r := rec(domain.TopicTransactions, 0, 0, "int_a", "evt_1", domain.TransactionCreated, tBase, `{"id":"txn_1"}`)
	_, err := p.Apply(ctx, r)
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
	if err := as.QueryRow(ctx, "SELECT count(*) FROM webhook_events WHERE event_id = 'evt_1'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("webhook_events rows for evt_1 after the retry: %d, want 1", n)
	}
}

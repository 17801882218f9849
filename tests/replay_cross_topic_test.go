package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

// An entity with events on two topics (its family's webhooks and the sync
// topic's snapshots) is folded in append order by a rebuild and a refold,
// as the live projectors applied it. A snapshot that ties with the create
// and carries more fields, then a later update: applied topic by topic,
// the snapshot would come after the update and be dropped as stale,
// losing its closing date.
func TestRebuildAndRefoldApplyTopicsInAppendOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	if r := e.send(signedWebhook(id, secret, event("evt_created", domain.TransactionCreated, t0, `{"id":"txn_x","status":"open","file_number":"F-1"}`))); r.Status != http.StatusOK {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 1)
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	appendAgain(t, db, producer, domain.Envelope{Schema: domain.SchemaV1, EventID: "sync_txn_x", IntegrationID: id,
		Type: domain.TransactionSynced, OccurredAt: t0, ReceivedAt: time.Now().UTC(), Source: domain.SourceSync,
		Priority: domain.TransactionSynced.Priority(),
		Payload:  []byte(`{"id":"txn_x","status":"open","file_number":"F-1","closing_date":"2026-12-01","escrow_officer":"Ann"}`)})
	if r := e.send(signedWebhook(id, secret, event("evt_updated", domain.TransactionUpdated, t0.Add(time.Minute), `{"id":"txn_x","status":"closing"}`))); r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 3)
	closing := `SELECT status, coalesce(closing_date::text, '-'), payload->>'escrow_officer' FROM transactions WHERE integration_id=$1 AND id='txn_x'`
	if got := queryString(t, db, closing, id); got != "closing 2026-12-01 Ann" {
		t.Fatalf("live row: %s", got)
	}
	want := dumpOf(t, db, id, false)
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("live: score %d, issues %+v", rep.Score, rep.Issues)
	}

	triggers := `SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'integration_metrics_hourly'::regclass AND NOT tgisinternal`
	wantTriggers := queryString(t, db, triggers)
	e.rebuildAndWait(nil, 90*time.Second)
	if got := dumpOf(t, db, id, false); got != want {
		t.Fatalf("after the rebuild:\n got %s\nwant %s", got, want)
	}
	// The swapped-in tables keep the migrations' triggers.
	if got := queryString(t, db, triggers); got != wantTriggers {
		t.Fatalf("metrics triggers after the rebuild:\n got %s\nwant %s", got, wantTriggers)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("after the rebuild: score %d, issues %+v", rep.Score, rep.Issues)
	}

	tamper(t, db, id, `UPDATE transactions SET closing_date = NULL WHERE integration_id=$1 AND id='txn_x'`)
	if fill := e.fill(id); len(fill.Errors) != 0 {
		t.Fatalf("fill: %+v", fill)
	}
	if got := dumpOf(t, db, id, false); got != want {
		t.Fatalf("after the refold:\n got %s\nwant %s", got, want)
	}
}

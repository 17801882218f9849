package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

// An entity folded again from the log (a replay after its row was deleted,
// a refold after it was edited) takes each event once, as the live
// projection does: an event appended twice is counted once, so a later
// event of the same instant is not overwritten by the duplicate.
func TestReplayFoldsAnEventAppendedTwiceOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	// Two status changes of txn_1 at the same instant, appended in this
	// order: the later on the log wins.
	for i, status := range []string{"a", "b"} {
		w := signedWebhook(id, secret, event(fmt.Sprintf("evt_%s", status), domain.TransactionStatusChanged, t0, fmt.Sprintf(`{"id":"txn_1","status":%q}`, status)))
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("status %s: %d %s", status, r.Status, r.Raw)
		}
		waitAudit(t, db, id, i+1)
	}
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// evt_a again, after evt_b, as a retry past the dedup window would
	// append it.
	again := domain.Envelope{Schema: domain.SchemaV1, EventID: "evt_a", IntegrationID: id, Type: domain.TransactionStatusChanged,
		OccurredAt: t0, ReceivedAt: time.Now().UTC(), Source: domain.SourceWebhook,
		Priority: domain.TransactionStatusChanged.Priority(), Payload: event("evt_a", domain.TransactionStatusChanged, t0, `{"id":"txn_1","status":"a"}`)}
	appendAgain(t, db, producer, again)
	status := `SELECT status FROM transactions WHERE integration_id=$1 AND id='txn_1'`
	if got := queryString(t, db, status, id); got != "b" {
		t.Fatalf("live status %q, want b: the duplicate of evt_a is counted once", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id=$1`, id); got != "2" {
		t.Fatalf("live audit rows %s, want 2", got)
	}
	want := readModelDump(t, db, id)

	// The row deleted behind the system's back: a replay of the whole log
	// folds it again from its three records, the duplicate unchanged.
	tamper(t, db, id, `DELETE FROM transactions WHERE integration_id=$1 AND id='txn_1'`)
	rep := e.replay(id, nil)
	if rep.Records != 3 || rep.Applied != 2 || rep.Unchanged != 1 || rep.AuditRestored != 0 {
		t.Fatalf("replay %+v, want 3 records, evt_a and evt_b applied and the duplicate unchanged", rep)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after replay:\n got %s\nwant %s", got, want)
	}

	// The row edited behind the system's back: gaps fill refolds it from
	// nothing, again taking the duplicate as unchanged.
	tamper(t, db, id, `UPDATE transactions SET status='a' WHERE integration_id=$1 AND id='txn_1'`)
	fill := e.fill(id)
	if len(fill.Errors) != 0 || len(fill.Replayed) != 1 {
		t.Fatalf("fill %+v, want one refold and no error", fill)
	}
	if rr := fill.Replayed[0]; rr.Records != 3 || rr.Applied != 2 || rr.Unchanged != 1 || rr.AuditRestored != 0 {
		t.Fatalf("refold %+v, want 3 records, evt_a and evt_b applied and the duplicate unchanged", rr)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after refold:\n got %s\nwant %s", got, want)
	}
}

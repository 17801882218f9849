package tests

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

// A sync snapshot projected after a newer webhook of the same record (the
// two travel on different topics) is stale, yet older than the row's
// creation: the row's creation time moves back to it, as a fold of the log
// in either order gives, and validate agrees.
func TestAStaleSnapshotMovesTheCreationTimeBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("earliest", nil)
	now := time.Now().UTC().Truncate(time.Second)
	if r := e.send(signedWebhook(id, secret, event("evt_upd", domain.ContactUpdated, now, `{"id":"con_1","email":"new@example.com"}`))); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 1)
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	then := now.Add(-48 * time.Hour)
	appendAgain(t, db, producer, domain.Envelope{Schema: domain.SchemaV1, EventID: "sync_con_1", IntegrationID: id,
		Type: domain.ContactSynced, OccurredAt: then, ReceivedAt: now, Source: domain.SourceSync, Priority: domain.ContactSynced.Priority(),
		Payload: json.RawMessage(`{"id":"con_1","email":"old@example.com","first_name":"Ada","updated_at":"` + then.Format(time.RFC3339) + `"}`)})
	got := queryString(t, db, `SELECT softpro_created_at, softpro_updated_at, email, last_event_id FROM contacts WHERE integration_id=$1 AND id='con_1'`, id)
	want := queryString(t, db, `SELECT $1::timestamptz, $2::timestamptz, 'new@example.com', 'evt_upd'`, then, now)
	if got != want {
		t.Fatalf("contact after the stale snapshot:\n got %s\nwant %s", got, want)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("validate: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

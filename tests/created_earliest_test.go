package tests

import (
	"context"
	"encoding/json"
	"fmt"
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

// A sync snapshot appended before a webhook of the same record, but
// projected after it (the sync topic's projector held back, as when it
// lags behind a large sync), is folded again from the log: the row gets the
// snapshot's fields the webhook lacked, as a fold in append order gives.
func TestASnapshotOvertakenByAWebhookIsFoldedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("overtaken", nil)
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	now := time.Now().UTC().Truncate(time.Second)
	then := now.Add(-48 * time.Hour)
	synced := func(eventID, contactID, data string) domain.Envelope {
		return domain.Envelope{Schema: domain.SchemaV1, EventID: eventID, IntegrationID: id, Type: domain.ContactSynced,
			OccurredAt: then, ReceivedAt: time.Now().UTC(), Source: domain.SourceSync, Priority: domain.ContactSynced.Priority(),
			Payload: json.RawMessage(`{"id":"` + contactID + `",` + data + `}`)}
	}
	// The sync topic's checkpoint row of the integration's partition
	// exists once a first record is projected; holding its lock holds the
	// sync projector back.
	appendAgain(t, db, producer, synced("sync_con_0", "con_0", `"first_name":"Grace"`))
	hold, err := db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(context.Background()) }()
	if _, err := hold.Exec(t.Context(), `SELECT 1 FROM projection_checkpoints WHERE topic = $1 FOR UPDATE`, domain.TopicSync); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Append(t.Context(), synced("sync_con_1", "con_1", `"email":"old@example.com","first_name":"Ada","last_name":"Lovelace"`)); err != nil {
		t.Fatal(err)
	}
	if r := e.send(signedWebhook(id, secret, event("evt_upd", domain.ContactUpdated, now, `{"id":"con_1","email":"new@example.com"}`))); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Raw)
	}
	eventually(t, 30*time.Second, func() string {
		if got := queryString(t, db, `SELECT count(*) FROM contacts WHERE integration_id=$1 AND id='con_1'`, id); got != "1" {
			return "the webhook's contact row is not there yet"
		}
		return ""
	})
	if err := hold.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitAudit(t, db, id, 3)
	// The snapshot was projected after the webhook, as too old to apply.
	if got := queryString(t, db, `SELECT applied FROM webhook_events WHERE integration_id=$1 AND event_id='sync_con_1'`, id); got != "false" {
		t.Fatalf("snapshot applied = %s, want false: it was not projected behind the webhook", got)
	}
	want := queryString(t, db, `SELECT $1::timestamptz, $2::timestamptz, 'new@example.com', 'Ada', 'Lovelace', 'evt_upd'`, then, now)
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT softpro_created_at, softpro_updated_at, email, first_name, last_name, last_event_id
 FROM contacts WHERE integration_id=$1 AND id='con_1'`, id)
		if got != want {
			return fmt.Sprintf("contact:\n got %s\nwant %s", got, want)
		}
		return ""
	})
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("validate: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

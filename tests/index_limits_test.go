package tests

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// An entity's key and the fields the read models index (file number,
// status, email, names, transaction ids) must fit a B-tree entry. An event
// carrying a longer one fails alone, with a reason naming the field, on
// the live path and in a rebuild alike; the events around it project, and
// a rebuild of the log still completes and matches the live read models.
// (Before, the live path poisoned it with the database's error, and a
// rebuild, which builds those indexes after loading, failed at its end,
// every time.)
func TestValuesTooLongForTheIndexesFailOnlyTheirEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	long := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)[:n] // incompressible
	}
	bad := []struct {
		eventID string
		typ     domain.EventType
		data    string
		field   string
	}{
		{"long_email", domain.ContactCreated, fmt.Sprintf(`{"id":"con_1","email":%q}`, long(3000)), "email"},
		{"long_id", domain.ContactCreated, fmt.Sprintf(`{"id":%q,"first_name":"A"}`, long(3000)), "id"},
		{"long_file", domain.TransactionCreated, fmt.Sprintf(`{"id":"txn_1","file_number":%q,"status":"open"}`, long(3000)), "file_number"},
		{"long_txn", domain.TaskCreated, fmt.Sprintf(`{"id":"tsk_1","transaction_id":%q}`, long(3000)), "transaction_id"},
	}
	for _, b := range bad {
		if r := e.send(signedWebhook(id, secret, event(b.eventID, b.typ, now, b.data))); r.Status != 200 {
			t.Fatalf("webhook %s: %d %s", b.eventID, r.Status, r.Raw)
		}
	}
	good := []struct {
		eventID string
		typ     domain.EventType
		data    string
	}{
		{"ok_contact", domain.ContactCreated, `{"id":"con_2","email":"a@example.com","first_name":"Ada"}`},
		{"ok_txn", domain.TransactionCreated, `{"id":"txn_2","file_number":"F-1","status":"open"}`},
		{"ok_edge", domain.ContactCreated, fmt.Sprintf(`{"id":"con_3","email":%q}`, strings.Repeat("é", domain.MaxIndexedBytes/2))},
	}
	for _, g := range good {
		if r := e.send(signedWebhook(id, secret, event(g.eventID, g.typ, now, g.data))); r.Status != 200 {
			t.Fatalf("webhook %s: %d %s", g.eventID, r.Status, r.Raw)
		}
	}
	waitAudit(t, db, id, len(good))
	eventually(t, 60*time.Second, func() string {
		got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id = $1 AND status = 'FAILED'`, id)
		if got != fmt.Sprint(len(bad)) {
			return fmt.Sprintf("FAILED events: %s, want %d", got, len(bad))
		}
		return ""
	})
	for _, b := range bad {
		msg := queryString(t, db, `SELECT coalesce(error, '') FROM webhook_events WHERE integration_id = $1 AND event_id = $2`, id, b.eventID)
		if !strings.Contains(msg, b.field) || !strings.Contains(msg, "longer than") {
			t.Errorf("%s: error %q, want it to name %s as too long", b.eventID, msg, b.field)
		}
	}
	if got := queryString(t, db, `SELECT count(*) FROM contacts WHERE integration_id = $1`, id); got != "2" {
		t.Errorf("contacts: %s, want 2 (con_2, con_3)", got)
	}
	want := readModelDump(t, db, id)

	e.rebuildAndWait(nil, 90*time.Second)
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("rebuilt read models differ:\n got %s\nwant %s", got, want)
	}
	if got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id = $1 AND status = 'FAILED' AND error LIKE '%longer than%'`, id); got != fmt.Sprint(len(bad)) {
		t.Errorf("FAILED after the rebuild: %s, want %d", got, len(bad))
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("consistency: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

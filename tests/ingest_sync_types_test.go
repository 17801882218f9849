package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A webhook of a type only syncs append (transaction.synced, …) is refused
// with 400 INVALID_PAYLOAD and not appended: it went to softpro.sync.v1,
// which holds what syncs pull, projected, and was left out of the webhook
// figures (webhooksReceived24h). An unknown type ending in .synced is kept
// like any unknown type.
func TestWebhookOfASyncRecordTypeIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	if r := e.send(signedWebhook(id, secret, event("e_other", "invoice.synced", now, `{"id":"inv_1"}`))); r.Status != 200 {
		t.Fatalf("invoice.synced: %d %s", r.Status, r.Raw)
	}
	e.waitStatuses(id, map[string]string{"e_other": "SKIPPED"})
	before := e.appendedTotal()
	refused := []struct {
		name string
		body []byte
	}{
		{"transaction.synced", []byte(fmt.Sprintf(`{"id":"typ4","type":"transaction.synced","timestamp":%q,"data":{"id":"t_synced_via_webhook","status":"x"}}`, at(now)))},
		{"contact.synced", event("typ5", domain.ContactSynced, now, `{"id":"c_synced_via_webhook"}`)},
		{"document.synced", event("typ6", domain.DocumentSynced, now, `{"id":"d_synced_via_webhook"}`)},
		{"task.synced", event("typ7", domain.TaskSynced, now, `{"id":"k_synced_via_webhook"}`)},
	}
	for _, tt := range refused {
		r := e.send(signedWebhook(id, secret, tt.body))
		_, msg := errCode(r.Raw)
		if want := "type " + tt.name + " is reserved for records pulled by syncs"; r.Status != 400 || r.code() != "INVALID_PAYLOAD" || msg != want {
			t.Errorf("%s: %d %s, want 400 INVALID_PAYLOAD %q", tt.name, r.Status, r.Raw, want)
		}
	}
	if after := e.appendedTotal(); after != before {
		t.Errorf("refused webhooks appended %d records", after-before)
	}
	for _, table := range []string{"transactions", "contacts", "documents", "tasks"} {
		if got := queryString(t, db, `SELECT count(*) FROM `+table+` WHERE integration_id = $1`, id); got != "0" {
			t.Errorf("%s: %s rows, want none", table, got)
		}
	}
}

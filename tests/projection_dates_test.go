package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A date field holding a number or text that reads as a time no read
// model can hold (beyond year 9999, which Postgres's timestamptz refuses or
// an API answer cannot render) leaves its typed column alone, as any other
// unreadable date does; the value stays in the payload. The event is
// projected, not poisoned, the read models answer, and a rebuild is not
// stopped by it.
func TestDatesBeyondWhatTheReadModelsHoldAreNotTyped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	for _, w := range [][]byte{
		event("evt_task_huge", domain.TaskCreated, now, `{"id":"tsk_huge","title":"far","due_date":9000000000000000000}`),
		event("evt_task_10k", domain.TaskCreated, now, `{"id":"tsk_10k","title":"10k","due_date":253402300800000}`),
		event("evt_task_ok", domain.TaskCreated, now, `{"id":"tsk_ok","title":"ok","due_date":"2024-03-01T00:00:00Z"}`),
		event("evt_txn_huge", domain.TransactionCreated, now, `{"id":"txn_huge","closing_date":9000000000000000000}`),
	} {
		if r := e.send(signedWebhook(id, secret, w)); r.Status != http.StatusOK {
			t.Fatalf("webhook: %d %s", r.Status, r.Raw)
		}
	}
	want := map[string]string{"evt_task_huge": "COMPLETED", "evt_task_10k": "COMPLETED", "evt_task_ok": "COMPLETED", "evt_txn_huge": "COMPLETED"}
	e.waitStatuses(id, want)
	if got := queryString(t, db, `SELECT string_agg(id || '=' || coalesce(due_date::text, 'null'), ',' ORDER BY id) FROM tasks WHERE integration_id = $1`, id); got != "tsk_10k=null,tsk_huge=null,tsk_ok=2024-03-01 00:00:00+00" {
		t.Errorf("due dates %s", got)
	}
	if got := queryString(t, db, `SELECT coalesce(closing_date::text, 'null') || ' ' || (payload->>'closing_date') FROM transactions WHERE integration_id = $1`, id); got != "null 9000000000000000000" {
		t.Errorf("closing date %s", got)
	}
	if l := e.list("/api/v1/integrations/softpro/" + id + "/tasks"); len(l.rows()) != 3 {
		t.Errorf("tasks list: %d rows", len(l.rows()))
	}
	dump := readModelDump(t, db, id)
	e.rebuildAndWait(nil, 90*time.Second)
	e.waitStatuses(id, want)
	if got := readModelDump(t, db, id); got != dump {
		t.Fatalf("rebuilt read models differ:\n got %s\nwant %s", got, dump)
	}
}

package tests

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A manual retry appends a FAILED event after the events that followed
// it, but the log's fold (validate, a rebuild) takes it at its first
// position: the live row is folded again from the log, so it ends as a
// rebuild would make it, whether the retried event ties with a later one
// on SoftPro's timestamp or is older than it.
func TestRetriedEventEndsWhereTheLogPutsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	heal := poisonTransactions(t, e)
	db := e.db()
	id, secret := e.integration("a", nil)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	send := func(eventID string, typ domain.EventType, at time.Time, data string) {
		t.Helper()
		if r := e.send(signedWebhook(id, secret, event(eventID, typ, at, data))); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", eventID, r.Status, r.Raw)
		}
	}
	// txn_tie: the create fails; a status change of the same second
	// creates the row. txn_old: the create fails; an update a second later
	// creates the row without the file number.
	send("evt_tie_created", domain.TransactionCreated, t0, `{"id":"txn_tie","file_number":"POISON","status":"open"}`)
	send("evt_tie_status", domain.TransactionStatusChanged, t0, `{"id":"txn_tie","status":"closing"}`)
	send("evt_old_created", domain.TransactionCreated, t0, `{"id":"txn_old","file_number":"POISON","status":"open"}`)
	send("evt_old_updated", domain.TransactionUpdated, t0.Add(time.Second), `{"id":"txn_old","status":"pending"}`)
	e.waitStatuses(id, map[string]string{"evt_tie_created": "FAILED", "evt_tie_status": "COMPLETED",
		"evt_old_created": "FAILED", "evt_old_updated": "COMPLETED"})

	heal()
	status, raw := e.call(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry-batch", e.Token,
		map[string]any{"integrationId": id})
	if status != http.StatusOK {
		t.Fatalf("retry batch: %d %s", status, raw)
	}
	e.waitStatuses(id, map[string]string{"evt_tie_created": "COMPLETED", "evt_old_created": "COMPLETED"})

	// As the log orders them: the create, then the later event on top.
	// Status histories as well: the one status change each, as a
	// rebuild records it.
	row := `SELECT status, coalesce(file_number, '-'), last_event_id,
  (SELECT string_agg(from_status || '>' || to_status || ':' || event_id, ',' ORDER BY changed_at, c.id)
   FROM transaction_status_changes c WHERE c.integration_id = t.integration_id AND c.transaction_id = t.id)
FROM transactions t WHERE integration_id=$1 AND id=$2`
	eventually(t, 20*time.Second, func() string {
		if got := queryString(t, db, row, id, "txn_tie"); got != "closing POISON evt_tie_status open>closing:evt_tie_status" {
			return "txn_tie: " + got + ", want closing POISON evt_tie_status open>closing:evt_tie_status"
		}
		if got := queryString(t, db, row, id, "txn_old"); got != "pending POISON evt_old_updated open>pending:evt_old_updated" {
			return "txn_old: " + got + ", want pending POISON evt_old_updated open>pending:evt_old_updated"
		}
		return ""
	})
	if rep := e.consistency(id); rep.Score != 100 || len(rep.Issues) != 0 {
		t.Fatalf("after the retries: score %d, issues %+v", rep.Score, rep.Issues)
	}
	// Both entities were folded again, and the metric says so.
	_, metrics := e.do(http.MethodGet, "/metrics", "", nil)
	var ok float64
	for _, line := range strings.Split(string(metrics), "\n") {
		if v, found := strings.CutPrefix(line, `softprohub_projection_refolds_total{result="ok"} `); found {
			ok, _ = strconv.ParseFloat(v, 64)
		}
	}
	if ok < 2 {
		t.Errorf("softprohub_projection_refolds_total{result=\"ok\"} = %v, want at least the 2 entities folded again", ok)
	}
}

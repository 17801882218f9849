package tests

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// TestRetryWithTheBrokerDownIsUnavailable: a retry that cannot read the
// failed record back from the log, because the broker is down, answers
// 503 with Retry-After, as the webhook receiver does for the same outage,
// and leaves the event FAILED for a later retry.
func TestRetryWithTheBrokerDownIsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker, fastRetries)
	poisonTransactions(t, e)
	a, sa := e.integration("a", nil)
	e.send(signedWebhook(a, sa, event("evt_poison", domain.TransactionCreated, time.Now(), `{"id":"txn_p","file_number":"POISON"}`)))
	e.waitStatuses(a, map[string]string{"evt_poison": "FAILED"})

	e.Broker.Close()
	base := "/api/v1/integrations/softpro/webhooks/"
	for _, c := range []struct {
		path string
		body any
	}{
		{base + "retry/evt_poison", nil},
		{base + "retry-batch", map[string]any{"integrationId": a}},
		{base + "retry-batch", map[string]any{"integrationId": a, "eventIds": []string{"evt_poison"}}},
	} {
		resp, raw := e.doResp(http.MethodPost, c.path, e.Token, c.body)
		code, _ := errCode(raw)
		if resp.StatusCode != http.StatusServiceUnavailable || code != "UNAVAILABLE" {
			t.Errorf("POST %s with the broker down: %d %s, want 503 UNAVAILABLE", c.path, resp.StatusCode, raw)
			continue
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("POST %s: Retry-After %q, want seconds", c.path, resp.Header.Get("Retry-After"))
		}
		e.checkContract(http.MethodPost, c.path, resp.StatusCode, raw)
		if got := queryString(t, e.db(), `SELECT status FROM webhook_events WHERE integration_id = $1 AND event_id = 'evt_poison'`, a); got != "FAILED" {
			t.Fatalf("after POST %s: the event is %s, want FAILED", c.path, got)
		}
	}
}

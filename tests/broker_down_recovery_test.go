package tests

import (
	"net/http"
	"testing"
)

// TestRecoveryAndStatsWithTheBrokerDown: with the broker gone, the
// recovery routes, which read the log, answer 503 UNAVAILABLE with
// Retry-After, and the stats still answer from the database, saying that
// the queues' lag is unknown rather than showing nothing waiting.
func TestRecoveryAndStatsWithTheBrokerDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, _ := e.integration("brokerdown", nil)
	stats := func() []queueStatsEntry {
		t.Helper()
		status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats", e.analystToken(), nil)
		if status != http.StatusOK {
			t.Fatalf("stats: %d %s", status, raw)
		}
		var s struct{ QueueStats []queueStatsEntry }
		apiData(t, raw, &s)
		if len(s.QueueStats) == 0 {
			t.Fatalf("stats without queues: %s", raw)
		}
		return s.QueueStats
	}
	for _, q := range stats() {
		if q.LagUnavailable {
			t.Errorf("%s: lag unavailable with the broker up", q.QueueName)
		}
	}

	e.Broker.Close()
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/integrations/softpro/projections"},
		{http.MethodPost, "/api/v1/integrations/softpro/" + id + "/replay"},
		{http.MethodGet, "/api/v1/integrations/softpro/" + id + "/gaps"},
		{http.MethodGet, "/api/v1/integrations/softpro/" + id + "/consistency"},
	} {
		resp, raw := e.doResp(c.method, c.path, e.Token, nil)
		wantUnavailable(t, c.method+" "+c.path+" with the broker down", resp.StatusCode, resp.Header, raw)
		e.checkContract(c.method, c.path, resp.StatusCode, raw)
	}
	for _, q := range stats() {
		if !q.LagUnavailable || q.Waiting != 0 {
			t.Errorf("%s with the broker down: waiting %d, lagUnavailable %v; want 0, true", q.QueueName, q.Waiting, q.LagUnavailable)
		}
	}
}

type queueStatsEntry struct {
	QueueName      string
	Waiting        int64
	LagUnavailable bool
}

package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// healthQueue is one entry of /api/webhooks/health's queues.
type healthQueue struct {
	QueueName      string
	Waiting        int64
	Completed      int64
	Failed         int64
	LagUnavailable bool
}

// The health answer's queue figures count what the topic's projector
// completed and what it poisoned, as the stats route does, and say when
// the lag is unknown rather than showing nothing waiting.
func TestHealthQueuesCountCompletedAndFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker, func(c *appConfig) { c.QueueRetryDelayMs = 10 })
	id, secret := e.integration("a", nil)
	now := time.Now()
	// A task event whose data has no id can never project.
	for _, w := range []webhook{
		signedWebhook(id, secret, event("evt_bad", domain.TaskCreated, now, `{"title":"no id"}`)),
		signedWebhook(id, secret, event("evt_good", domain.TaskCreated, now, `{"id":"tsk_1","title":"fine"}`)),
	} {
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("webhook: %d %s", r.Status, r.Raw)
		}
	}
	e.waitStatuses(id, map[string]string{"evt_bad": "FAILED", "evt_good": "COMPLETED"})

	tasks := func() healthQueue {
		t.Helper()
		status, raw := e.call(http.MethodGet, "/api/webhooks/health", "", nil)
		if status != http.StatusOK {
			t.Fatalf("health: %d %s", status, raw)
		}
		var h struct{ Queues []healthQueue }
		apiData(t, raw, &h)
		for _, q := range h.Queues {
			if q.QueueName == domain.TopicTasks {
				return q
			}
		}
		t.Fatalf("health without a %s queue: %s", domain.TopicTasks, raw)
		return healthQueue{}
	}
	eventually(t, 10*time.Second, func() string {
		if q := tasks(); q.Completed != 1 || q.Failed != 1 || q.LagUnavailable {
			return fmt.Sprintf("health's %s queue: completed %d, failed %d, lagUnavailable %v; want 1, 1, false",
				q.QueueName, q.Completed, q.Failed, q.LagUnavailable)
		}
		return ""
	})
}

package tests

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
)

// queueStats.waiting is the consumer group's lag: with the projectors
// stopped, the n events appended since they last committed.
func TestStatsWaitingIsTheGroupLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", nil)
	topic := domain.TaskCreated.Topic()
	waiting := func() map[string]int64 {
		t.Helper()
		status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats", e.analystToken(), nil)
		if status != http.StatusOK {
			t.Fatalf("stats: %d %s", status, raw)
		}
		var s struct {
			QueueStats []struct {
				QueueName string
				Waiting   int64
			}
		}
		apiData(t, raw, &s)
		out := map[string]int64{}
		for _, q := range s.QueueStats {
			out[q.QueueName] = q.Waiting
		}
		return out
	}
	send := func(eventID string) {
		t.Helper()
		if r := e.send(signedWebhook(id, secret, payload(eventID, domain.TaskCreated, `{"id":"k_`+eventID+`"}`))); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", eventID, r.Status, r.Raw)
		}
	}
	send("evt_first")
	eventually(t, 30*time.Second, func() string {
		if w := waiting()[topic]; w != 0 {
			return "waiting " + strconv.FormatInt(w, 10) + " with the projectors running, want 0"
		}
		return ""
	})

	e.shutdown()
	e.roles = app.Roles{Ingest: true, API: true}
	e.launch()
	const n = 7
	for i := range n {
		send("evt_" + strconv.Itoa(i))
	}
	got := waiting()
	for q, w := range got {
		want := int64(0)
		if q == topic {
			want = n
		}
		if w != want {
			t.Errorf("queueStats %s waiting = %d, want %d", q, w, want)
		}
	}
	if _, ok := got[topic]; !ok {
		t.Errorf("queueStats lack %s: %v", topic, got)
	}
}

package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// The broker goes away for a few seconds and comes back on the same port
// with its data while the service keeps running: the live projectors'
// subscribers reconnect on their own, and a webhook sent afterwards is
// projected without a restart of the service.
func TestLiveProjectionsResumeAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	send := func(eventID string) {
		t.Helper()
		w := signedWebhook(id, secret, payload(eventID, domain.TransactionUpdated, fmt.Sprintf(`{"id":"txn_%s","status":"open"}`, eventID)))
		if r := e.sendUntilOK(w, 30*time.Second); r.Status != 200 {
			t.Fatalf("%s: %d %s", eventID, r.Status, r.Raw)
		}
	}
	send("evt_before")
	e.waitStatuses(id, map[string]string{"evt_before": "COMPLETED"})

	port := brokerPort(t, e)
	e.Broker.Close()
	time.Sleep(5 * time.Second) // the outage: the subscribers lose the broker
	e.Broker = startBroker(t, e.Cfg.DataDir, port)

	send("evt_after")
	e.waitStatuses(id, map[string]string{"evt_after": "COMPLETED"})
	select {
	case <-e.exited:
		t.Fatal("the service stopped")
	default:
	}
}

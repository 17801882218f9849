package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A redelivery that arrives while the first delivery's append is still
// waiting for the broker must not be acknowledged as a duplicate: if that
// append then fails, the sender would hold a 200 for an event that is not on
// the log.
func TestRedeliveryDuringFailingAppendIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	rdb := redisOf(t, e)
	port := brokerPort(t, e)
	e.Broker.Close()

	w := signedWebhook(id, secret, payload("evt_inflight", domain.TaskCreated, `{"id":"k1"}`))
	first := make(chan response, 1)
	go func() { first <- e.send(w) }()
	// Wait until the first delivery holds the fingerprint, i.e. is appending.
	key := "dedup:" + id + ":evt_inflight"
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rdb.Exists(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first delivery never set its fingerprint")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := e.send(w)
	r1 := <-first
	if r1.Status != http.StatusServiceUnavailable || r1.code() != "APPEND_FAILED" {
		t.Fatalf("first delivery with the broker down: %d %s", r1.Status, r1.Raw)
	}
	if second.Status == http.StatusOK {
		t.Fatalf("redelivery during the failing append answered %d %s; the event is not on the log", second.Status, second.Raw)
	}
	if second.Status != http.StatusServiceUnavailable || second.RetryAfter == "" {
		t.Fatalf("redelivery during the failing append: %d %s Retry-After=%q, want 503 with Retry-After", second.Status, second.Raw, second.RetryAfter)
	}

	e.Broker = startBroker(t, e.Cfg.DataDir, port)
	r := e.sendUntilOK(w, 30*time.Second)
	if r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("retry after recovery: %d %s", r.Status, r.Raw)
	}
	if n := countEvent(e, domain.TopicTasks, "evt_inflight"); n != 1 {
		t.Fatalf("evt_inflight on the log %d times, want 1", n)
	}
}

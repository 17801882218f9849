package tests

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/domain"
)

// redisOf connects to the env's Redis.
func redisOf(t *testing.T, e *Env) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(e.Cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// countEvent counts the records of eventID on topic.
func countEvent(e *Env, topic, eventID string) int {
	n := 0
	for _, rec := range e.records(topic) {
		if rec.Envelope.EventID == eventID {
			n++
		}
	}
	return n
}

// Integration ids may contain ':', and so may event ids: the fingerprint of
// one integration's event must never be another integration's.
func TestDedupKeysOfIntegrationsDoNotCollide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	b, sb := e.integration("a:x", nil)
	if b != a+":x" {
		t.Fatalf("ids %q and %q", a, b)
	}
	if r := e.send(signedWebhook(a, sa, payload("x:e1", domain.ContactCreated, `{"id":"c1"}`))); r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("a's event: %d %s", r.Status, r.Raw)
	}
	r := e.send(signedWebhook(b, sb, payload("e1", domain.ContactCreated, `{"id":"c2"}`)))
	if r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("b's event, new to b: %d %s", r.Status, r.Raw)
	}
	var ofB int
	for _, rec := range e.records(domain.TopicContacts) {
		if rec.Envelope.IntegrationID == b && rec.Envelope.EventID == "e1" {
			ofB++
		}
	}
	if ofB != 1 {
		t.Fatalf("b's event on the log %d times, want 1", ofB)
	}
}

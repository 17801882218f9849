package tests

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/redis"
	"github.com/roisystems/softprohub/ingest"
)

// secondIngest starts another ingest process on e's configuration (same
// database, Redis and broker) and returns an Env that sends to it.
func secondIngest(t *testing.T, e *Env) *Env {
	t.Helper()
	cfg := e.Cfg
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Roles: app.Roles{Ingest: true}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatalf("second process: %v", err)
	}
	if err := a.Listen(); err != nil {
		cancel()
		a.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second process: app.Run: %v", err)
		}
		a.Close()
	})
	return &Env{t: t, App: a, URL: "http://" + a.Addr(), Cfg: cfg, Brokers: e.Brokers, ns: e.ns, client: e.client}
}

// An integration's ingest limit holds across every process that serves
// its webhooks, not per process.
func TestIngestRateLimitIsSharedByEveryProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := secondIngest(t, e)
	id, secret := e.integration("a", map[string]any{"ingestRateLimit": 3})
	for i, via := range []*Env{e, other, e} {
		if r := via.send(signedWebhook(id, secret, payload("evt_"+strconv.Itoa(i), domain.TaskCreated, `{"id":"k1"}`))); r.Status != 200 {
			t.Fatalf("webhook %d: %d %s", i, r.Status, r.Raw)
		}
	}
	for i, via := range []*Env{other, e} {
		r := via.send(signedWebhook(id, secret, payload("evt_over"+strconv.Itoa(i), domain.TaskCreated, `{"id":"k1"}`)))
		if r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" || r.RetryAfter == "" {
			t.Fatalf("over the shared limit, process %d: %d %s Retry-After=%q", i, r.Status, r.Raw, r.RetryAfter)
		}
	}
	if n := len(e.records(domain.TopicTasks)); n != 3 {
		t.Fatalf("tasks topic holds %d records, want 3", n)
	}
}

// The limit is per minute, and Retry-After is the time until a token is
// back, rounded up: with one webhook a minute, a second one at once is told
// to wait 60 s.
func TestIngestRateLimitRetryAfterIsTheTimeToTheNextToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", map[string]any{"ingestRateLimit": 1})
	start := time.Now()
	if r := e.send(signedWebhook(id, secret, payload("evt_1", domain.TaskCreated, `{"id":"k1"}`))); r.Status != 200 {
		t.Fatalf("first: %d %s", r.Status, r.Raw)
	}
	r := e.send(signedWebhook(id, secret, payload("evt_2", domain.TaskCreated, `{"id":"k1"}`)))
	elapsed := time.Since(start)
	if r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" {
		t.Fatalf("second: %d %s", r.Status, r.Raw)
	}
	s, err := strconv.Atoi(r.RetryAfter)
	if err != nil {
		t.Fatalf("Retry-After %q", r.RetryAfter)
	}
	// A whole second or more between the two would lawfully round to 59.
	if elapsed < 900*time.Millisecond && s != 60 || s < 59 || s > 60 {
		t.Fatalf("Retry-After %d s %v after the first webhook, want 60", s, elapsed)
	}
}

// A fingerprint lives WEBHOOK_DEDUP_TTL: within it a redelivery is a
// duplicate, after it the event is appended again.
func TestIngestRedeliveryAfterTheDedupTTLIsAppendedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.WebhookDedupTTL = 2 })
	id, secret := e.integration("a", nil)
	w := signedWebhook(id, secret, payload("evt_ttl", domain.TaskCreated, `{"id":"k1"}`))
	sent := time.Now()
	if r := e.send(w); r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("first: %d %s", r.Status, r.Raw)
	}
	if r := e.send(w); r.Status != 200 || r.Body["duplicate"] != true {
		t.Fatalf("redelivery within the TTL: %d %s", r.Status, r.Raw)
	}
	time.Sleep(time.Until(sent.Add(2*time.Second + 500*time.Millisecond)))
	if r := e.send(w); r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("redelivery after the TTL: %d %s", r.Status, r.Raw)
	}
	if n := countEvent(e, domain.TopicTasks, "evt_ttl"); n != 2 {
		t.Fatalf("evt_ttl on the log %d times, want 2", n)
	}
}

// When the integration cannot be looked up (the database fails), the
// webhook is answered 503 with a Retry-After, never 404: SoftPro must
// retry it.
func TestIngestLookupFailureIs503WithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `ALTER TABLE softpro_integrations RENAME TO integrations_away`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), `ALTER TABLE integrations_away RENAME TO softpro_integrations`)
	})
	// An id never looked up, so no cache answers for it.
	r := e.send(signedWebhook(id+"-uncached", secret, payload("evt_1", domain.TaskCreated, `{}`)))
	if r.Status != http.StatusServiceUnavailable || r.code() != "UNAVAILABLE" || r.RetryAfter == "" {
		t.Fatalf("lookup failing: %d %s Retry-After=%q", r.Status, r.Raw, r.RetryAfter)
	}
	if _, err := db.Exec(ctx, `ALTER TABLE integrations_away RENAME TO softpro_integrations`); err != nil {
		t.Fatal(err)
	}
}

// An idle bucket refills to its limit and no further: however long an
// integration was quiet, it may send at most its limit at once.
func TestIngestIdleBucketHoldsNoMoreThanTheLimit(t *testing.T) {
	t.Parallel()
	opt, err := goredis.ParseURL(sharedServices(t).redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	g := redis.NewGate(c)
	id := "t" + randomID(6) + "-idle"
	t.Cleanup(func() { _ = c.Del(context.Background(), "ratelimit:ingest:"+id).Err() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admit := func(event string) ingest.Admission {
		t.Helper()
		a, err := g.Admit(ctx, ingest.Ticket{IntegrationID: id, EventID: event, Limit: 2, Window: time.Second, DedupTTL: time.Second})
		if err != nil {
			t.Fatalf("Admit(%s): %v", event, err)
		}
		return a
	}
	admit("warm")
	// A window and a half of silence, within the bucket's two idle windows
	// of life: it holds 2 tokens, not the 1 + 3 refilled meanwhile.
	time.Sleep(1500 * time.Millisecond)
	for i, want := range []bool{true, true, false} {
		if a := admit("burst-" + strconv.Itoa(i)); a.Allowed != want {
			t.Fatalf("admit %d after the idle time = %+v, want allowed=%v", i+1, a, want)
		}
	}
}

package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/ingest"
)

const defaultTestRedisURL = "redis://127.0.0.1:6379/0"

func testRedisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return defaultTestRedisURL
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testClient connects to TEST_REDIS_URL and fails the test when Redis does
// not answer.
func testClient(t *testing.T) *goredis.Client {
	t.Helper()
	c, err := NewClient(ClientConfig{URL: testRedisURL()})
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(testContext(t)).Err(); err != nil {
		t.Fatalf("Redis is needed: set TEST_REDIS_URL (now %q): %v", redacted(testRedisURL()), err)
	}
	return c
}

// redacted hides a password in a URL for messages.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// testIntegration returns a fresh integration id whose bucket is deleted
// when the test ends. Its fingerprints expire with their TTL: finding them
// takes KEYS or SCAN over the whole keyspace, which a Redis holding
// millions of keys (a benchmark's) answers too slowly for the tests
// running beside it (KEYS blocks the server).
func testIntegration(t *testing.T, c *goredis.Client) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := "test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Del(ctx, ingestBucketKey(id)).Err()
	})
	return id
}

func ticket(id, event string, limit int, window time.Duration) ingest.Ticket {
	return ingest.Ticket{IntegrationID: id, EventID: event, Limit: limit, Window: window, DedupTTL: time.Hour}
}

func mustAdmit(t *testing.T, g *Gate, tk ingest.Ticket) ingest.Admission {
	t.Helper()
	a, err := g.Admit(testContext(t), tk)
	if err != nil {
		t.Fatalf("Admit(%s): %v", tk.EventID, err)
	}
	return a
}

func TestGateAdmitsOnceThenDuplicate(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)

	if err := g.Ping(testContext(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	first := mustAdmit(t, g, ticket(id, "evt-1", 100, time.Minute))
	if !first.Allowed || first.Duplicate || first.RetryAfter != 0 {
		t.Fatalf("first admit = %+v, want allowed, not duplicate", first)
	}
	ttl, err := c.PTTL(testContext(t), dedupKey(id, "evt-1")).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("fingerprint TTL = %v (%v), want about DedupTTL", ttl, err)
	}
	second := mustAdmit(t, g, ticket(id, "evt-1", 100, time.Minute))
	if !second.Allowed || !second.Duplicate {
		t.Fatalf("second admit = %+v, want allowed duplicate", second)
	}
	if other := mustAdmit(t, g, ticket(id, "evt-2", 100, time.Minute)); other.Duplicate {
		t.Fatalf("another event id is a duplicate: %+v", other)
	}
}

func TestGateLimitExhausted(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	ctx := testContext(t)

	const limit = 3
	for i := range limit {
		if a := mustAdmit(t, g, ticket(id, "evt-"+string(rune('a'+i)), limit, time.Minute)); !a.Allowed {
			t.Fatalf("admit %d of %d refused: %+v", i+1, limit, a)
		}
	}
	denied := mustAdmit(t, g, ticket(id, "evt-over", limit, time.Minute))
	if denied.Allowed || denied.Duplicate {
		t.Fatalf("admit over the limit = %+v, want not allowed", denied)
	}
	// One token comes back every minute/3 = 20 s.
	if denied.RetryAfter <= 0 || denied.RetryAfter > 20*time.Second {
		t.Fatalf("RetryAfter = %v, want within (0, 20s]", denied.RetryAfter)
	}
	if n, err := c.Exists(ctx, dedupKey(id, "evt-over")).Result(); err != nil || n != 0 {
		t.Fatalf("refused event's fingerprint exists = %d (%v), want absent", n, err)
	}
	// A refused duplicate is still refused, not reported as a duplicate.
	if a := mustAdmit(t, g, ticket(id, "evt-a", limit, time.Minute)); a.Allowed || a.Duplicate {
		t.Fatalf("refused known event = %+v", a)
	}
	ttl, err := c.PTTL(ctx, ingestBucketKey(id)).Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Minute {
		t.Fatalf("bucket TTL = %v (%v), want within (0, 2 windows]", ttl, err)
	}
}

func TestGateRefillsOverTime(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)

	const limit, window = 2, 2 * time.Second
	for i := range limit {
		if a := mustAdmit(t, g, ticket(id, "fill-"+string(rune('a'+i)), limit, window)); !a.Allowed {
			t.Fatalf("admit %d refused: %+v", i, a)
		}
	}
	denied := mustAdmit(t, g, ticket(id, "late", limit, window))
	if denied.Allowed || denied.RetryAfter <= 0 || denied.RetryAfter > window/limit {
		t.Fatalf("admit over the limit = %+v, want refused with RetryAfter in (0, %v]", denied, window/limit)
	}
	// The refill is continuous: after the advertised wait one token is back.
	time.Sleep(denied.RetryAfter + 10*time.Millisecond)
	if a := mustAdmit(t, g, ticket(id, "late", limit, window)); !a.Allowed || a.Duplicate {
		t.Fatalf("admit after RetryAfter = %+v, want allowed and new", a)
	}
	if a := mustAdmit(t, g, ticket(id, "later", limit, window)); a.Allowed {
		t.Fatalf("only one token should have refilled: %+v", a)
	}
}

func TestGateSurvivesScriptFlush(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	ctx := testContext(t)

	mustAdmit(t, g, ticket(id, "before", 100, time.Minute))
	// A restarted or failed-over Redis has no cached scripts: EVALSHA fails
	// with NOSCRIPT and the gate must fall back to EVAL.
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if a := mustAdmit(t, g, ticket(id, "after", 100, time.Minute)); !a.Allowed || a.Duplicate {
		t.Fatalf("admit after SCRIPT FLUSH = %+v", a)
	}
}

func TestGateRelease(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	ctx := testContext(t)

	mustAdmit(t, g, ticket(id, "evt", 100, time.Minute))
	if err := g.Release(ctx, id, "evt"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if a := mustAdmit(t, g, ticket(id, "evt", 100, time.Minute)); !a.Allowed || a.Duplicate {
		t.Fatalf("admit after Release = %+v, want allowed and new", a)
	}
	if err := g.Release(ctx, id, "never-seen"); err != nil {
		t.Fatalf("Release of an absent fingerprint: %v", err)
	}
}

func TestGateIntegrationsAreIndependent(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	a, b := testIntegration(t, c), testIntegration(t, c)

	if adm := mustAdmit(t, g, ticket(a, "shared-id", 1, time.Minute)); !adm.Allowed || adm.Duplicate {
		t.Fatalf("a: %+v", adm)
	}
	if adm := mustAdmit(t, g, ticket(a, "other", 1, time.Minute)); adm.Allowed {
		t.Fatalf("a's bucket should be empty: %+v", adm)
	}
	if adm := mustAdmit(t, g, ticket(b, "shared-id", 1, time.Minute)); !adm.Allowed || adm.Duplicate {
		t.Fatalf("b is limited or deduplicated by a: %+v", adm)
	}
}

func TestGateConcurrentAdmitsOfOneEvent(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	ctx := testContext(t)

	const n = 48
	var fresh, dups atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			a, err := g.Admit(ctx, ticket(id, "same", 1000, time.Minute))
			switch {
			case err != nil:
				errs <- err
			case !a.Allowed:
				errs <- nil
			case a.Duplicate:
				dups.Add(1)
			default:
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("admit failed or was refused: %v", err)
	}
	if fresh.Load() != 1 || dups.Load() != n-1 {
		t.Fatalf("%d new and %d duplicates, want 1 and %d", fresh.Load(), dups.Load(), n-1)
	}
}

func TestGateRejectsInvalidTickets(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	for _, tc := range []struct {
		name string
		t    ingest.Ticket
	}{
		{name: "no integration", t: ingest.Ticket{EventID: "e", Limit: 1, Window: time.Minute, DedupTTL: time.Hour}},
		{name: "no event", t: ingest.Ticket{IntegrationID: id, Limit: 1, Window: time.Minute, DedupTTL: time.Hour}},
		{name: "zero limit", t: ingest.Ticket{IntegrationID: id, EventID: "e", Window: time.Minute, DedupTTL: time.Hour}},
		{name: "zero window", t: ingest.Ticket{IntegrationID: id, EventID: "e", Limit: 1, DedupTTL: time.Hour}},
		{name: "zero ttl", t: ingest.Ticket{IntegrationID: id, EventID: "e", Limit: 1, Window: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := g.Admit(testContext(t), tc.t); err == nil {
				t.Fatal("Admit succeeded, want an error")
			}
		})
	}
}

// TestTakeTokenWithoutFingerprint covers the shape a SoftPro API limiter
// uses: a bucket alone, several tokens at a time.
func TestTakeTokenWithoutFingerprint(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	id := testIntegration(t, c)
	ctx := testContext(t)
	key := "ratelimit:api:" + id
	t.Cleanup(func() { _ = c.Del(context.Background(), key).Err() })

	req := take{BucketKey: key, Capacity: 10, Interval: time.Minute, Cost: 4}
	for i, want := range []int{6, 2} {
		res, err := takeToken(ctx, c, req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Allowed || res.Duplicate || res.Remaining != want {
			t.Fatalf("take %d = %+v, want allowed with %d left", i+1, res, want)
		}
	}
	res, err := takeToken(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	// Two tokens are missing at 10 per minute: about 12 s.
	if res.Allowed || res.RetryAfter < 11*time.Second || res.RetryAfter > 12*time.Second {
		t.Fatalf("take over the limit = %+v, want refused with RetryAfter about 12s", res)
	}
}

func TestGateReportsUnreachableRedis(t *testing.T) {
	t.Parallel()
	c, err := NewClient(ClientConfig{Host: "127.0.0.1", Port: 1, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g := NewGate(c)
	start := time.Now()
	if _, err := g.Admit(testContext(t), ticket("x", "y", 1, time.Minute)); err == nil {
		t.Fatal("Admit against a closed port succeeded")
	}
	if err := g.Ping(testContext(t)); err == nil {
		t.Fatal("Ping against a closed port succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing took %v; the gate must fail fast", d)
	}
}

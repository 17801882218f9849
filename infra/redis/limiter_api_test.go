package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/ingest"
)

// apiIntegration returns a fresh integration id whose API bucket is deleted
// when the test ends.
func apiIntegration(t *testing.T, c *goredis.Client) string {
	t.Helper()
	id := testIntegration(t, c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Del(ctx, APIBucketKey(id)).Err()
	})
	return id
}

// The original API: CanMakeRequest and RemainingQuota look without taking,
// RecordRequest takes one request or says how long until one is back.
func TestLimiterOriginalAPI(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	l := NewLimiter(c)
	ctx := testContext(t)
	id := apiIntegration(t, c)
	// 20 per minute: a bucket of 2 (max(1, 20/10)), one back every 6.7 s,
	// far longer than this test takes between two calls.
	q := ingest.Quota{Limit: 20, Window: time.Minute}

	remaining := func(want int) {
		t.Helper()
		n, retryAfter, err := l.RemainingQuota(ctx, id, q)
		if err != nil || n != want {
			t.Fatalf("remaining quota %d (retry after %s), %v: want %d", n, retryAfter, err, want)
		}
		if want > 0 && retryAfter != 0 {
			t.Fatalf("remaining quota %d with retry after %s, want 0", n, retryAfter)
		}
		can, err := l.CanMakeRequest(ctx, id, q)
		if err != nil || can != (want > 0) {
			t.Fatalf("can make request = %v, %v with %d remaining", can, err, want)
		}
	}
	record := func(want bool) time.Duration {
		t.Helper()
		ok, retryAfter, err := l.RecordRequest(ctx, id, q)
		if err != nil || ok != want {
			t.Fatalf("record request = %v (retry after %s), %v: want %v", ok, retryAfter, err, want)
		}
		return retryAfter
	}

	remaining(2)
	remaining(2) // looking takes nothing
	record(true)
	remaining(1)
	record(true)
	remaining(0)
	if _, retryAfter, _ := l.RemainingQuota(ctx, id, q); retryAfter <= 0 || retryAfter > 7*time.Second {
		t.Fatalf("remaining quota retry after %s, want (0, 6.7 s]", retryAfter)
	}
	if retryAfter := record(false); retryAfter <= 0 || retryAfter > 7*time.Second {
		t.Fatalf("refused request's retry after %s, want (0, 6.7 s]", retryAfter)
	}
	remaining(0) // a refused request takes nothing either

	// Quotas are per integration.
	other := apiIntegration(t, c)
	if n, _, err := l.RemainingQuota(ctx, other, q); err != nil || n != 2 {
		t.Fatalf("another integration's remaining quota %d, %v: want 2", n, err)
	}
	// A quota that is not one is refused.
	if _, _, err := l.RecordRequest(ctx, id, ingest.Quota{Limit: 0, Window: time.Minute}); err == nil {
		t.Fatal("record request with a limit of 0 succeeded")
	}
}

// Wait takes the next request once it is back; with no deadline it sleeps
// until then but returns as soon as its context is cancelled; with a
// deadline before the next request it returns ErrQuotaExhausted at once.
func TestLimiterWait(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	l := NewLimiter(c)
	ctx := testContext(t)

	// A quota of 2 per second: one request, then one a second.
	fast := ingest.Quota{Limit: 2, Window: time.Second}
	id := apiIntegration(t, c)
	for i := range 3 {
		if err := l.Wait(ctx, id, fast); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	if ok, _ := l.CanMakeRequest(ctx, id, fast); ok {
		t.Fatal("a request is still allowed right after Wait took the last one")
	}

	// 1 per hour: once taken, the next is an hour away.
	slow := ingest.Quota{Limit: 1, Window: time.Hour}
	id = apiIntegration(t, c)
	if err := l.Wait(ctx, id, slow); err != nil {
		t.Fatal(err)
	}
	// No deadline, so Wait sleeps towards the next request.
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Wait(cctx, id, slow) }()
	select {
	case err := <-done:
		t.Fatalf("wait returned %v before its context was cancelled", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("wait after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return within 10 s of its context being cancelled")
	}

	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	start := time.Now()
	if err := l.Wait(dctx, id, slow); !errors.Is(err, ingest.ErrQuotaExhausted) {
		t.Fatalf("wait with a deadline before the next request: %v, want ErrQuotaExhausted", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("wait with a deadline before the next request took %s, want at once", took)
	}
	if n, _, err := l.RemainingQuota(ctx, id, slow); err != nil || n != 0 {
		t.Fatalf("remaining quota %d, %v after the refused waits: want 0", n, err)
	}
}

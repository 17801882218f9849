package ingest

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// Ids come from the URL of an unauthenticated endpoint: a stream of unknown
// ones must not grow the cache without bound.
func TestCacheBoundsUnknownIDs(t *testing.T) {
	t.Parallel()
	c := NewCache(fakeSource{}, time.Minute, 2*time.Second)
	clock := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return clock }
	for i := range 5 * maxCacheEntries {
		if _, err := c.Integration(context.Background(), "nope-"+strconv.Itoa(i)); err == nil {
			t.Fatal("an unknown id was found")
		}
		clock = clock.Add(time.Millisecond)
	}
	c.mu.RLock()
	n := len(c.entries)
	c.mu.RUnlock()
	if n > maxCacheEntries {
		t.Fatalf("%d entries cached, want at most %d", n, maxCacheEntries)
	}
}

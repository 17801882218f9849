package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Cache keeps integrations in memory so the webhook hot path reads no
// database. Entries live for TTL at most; Invalidate drops one at once (the
// store's change notifications call it, in this process and in every other).
// Unknown ids are cached too, for NegativeTTL, so a flood of webhooks for a
// deleted integration does not reach the database. Safe for concurrent use.
type Cache struct {
	src         IntegrationSource
	ttl         time.Duration
	negativeTTL time.Duration
	now         func() time.Time

	mu      sync.RWMutex
	entries map[string]cacheEntry
	// gen increases on every invalidation so a load that raced with one
	// does not store a stale value.
	gen uint64
	// lastSweep is when expired entries were last dropped.
	lastSweep time.Time
}

// maxCacheEntries bounds the entries of a Cache: ids come from the URL of
// an unauthenticated endpoint, so unknown ones must not pile up. Past it,
// expired entries are dropped (at most once per negative TTL) and unknown
// ids are no longer cached; known integrations always are.
const maxCacheEntries = 10000

type cacheEntry struct {
	in      domain.Integration
	missing bool
	expires time.Time
}

// NewCache wraps src. ttl bounds staleness when a change notification is
// lost (default 30 s); negativeTTL applies to unknown ids (default 2 s).
func NewCache(src IntegrationSource, ttl, negativeTTL time.Duration) *Cache {
	if src == nil {
		panic("ingest.NewCache: nil source")
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	if negativeTTL <= 0 {
		negativeTTL = 2 * time.Second
	}
	return &Cache{src: src, ttl: ttl, negativeTTL: negativeTTL, now: time.Now, entries: map[string]cacheEntry{}}
}

// Integration returns the cached integration, loading it on a miss.
func (c *Cache) Integration(ctx context.Context, id string) (domain.Integration, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[id]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		if e.missing {
			return domain.Integration{}, domain.ErrNotFound
		}
		return e.in, nil
	}
	in, err := c.src.Integration(ctx, id)
	missing := errors.Is(err, domain.ErrNotFound)
	if err != nil && !missing {
		return domain.Integration{}, err
	}
	e = cacheEntry{in: in, missing: missing, expires: now.Add(c.ttl)}
	if missing {
		e.expires = now.Add(c.negativeTTL)
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.entries) >= maxCacheEntries && now.Sub(c.lastSweep) >= c.negativeTTL {
			c.lastSweep = now
			for k, old := range c.entries {
				if !now.Before(old.expires) {
					delete(c.entries, k)
				}
			}
		}
		if !missing || len(c.entries) < maxCacheEntries {
			c.entries[id] = e
		}
	}
	c.mu.Unlock()
	return in, err
}

// Invalidate drops id from the cache; an empty id drops everything.
func (c *Cache) Invalidate(id string) {
	c.mu.Lock()
	c.gen++
	if id == "" {
		c.entries = map[string]cacheEntry{}
	} else {
		delete(c.entries, id)
	}
	c.mu.Unlock()
}

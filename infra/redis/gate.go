package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/ingest"
)

var (
	_ ingest.Gate      = (*Gate)(nil)
	_ ingest.Confirmer = (*Gate)(nil)
)

// Gate is the ingest gate: a per-integration token bucket under
// "ratelimit:ingest:<integration id>" and a per-event fingerprint under
// "dedup:<integration id>:<event id>" (see dedupKey), checked and set in one
// EVALSHA. It is safe for concurrent use and shares its limits with every
// instance that uses the same Redis.
type Gate struct {
	c *goredis.Client
}

// NewGate returns a gate over c, which is required.
func NewGate(c *goredis.Client) *Gate {
	if c == nil {
		panic("redis: NewGate needs a client")
	}
	return &Gate{c: c}
}

func ingestBucketKey(integrationID string) string { return "ratelimit:ingest:" + integrationID }

// dedupKey is "dedup:<integration id>:<event id>" with '%' and ':' of the
// integration id percent-encoded: both ids may contain ':', and without the
// encoding integration "a" with event "b:c" and integration "a:b" with
// event "c" would share one fingerprint. Ids without '%' or ':' keep their
// plain key.
func dedupKey(integrationID, eventID string) string {
	return "dedup:" + keyEscaper.Replace(integrationID) + ":" + eventID
}

var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// Admit takes a token from the integration's bucket (t.Limit tokens, refilled
// continuously at t.Limit per t.Window; the bucket expires after two idle
// windows). Without a token it answers not allowed with the time until one
// is back, and leaves the fingerprint alone so the sender's retry is not
// taken for a duplicate. With one it sets the event's fingerprint if absent
// and answers Duplicate when a kept one was already there, InFlight when a
// pending one was. Duplicates therefore use tokens too. With t.NoToken the
// bucket is left alone and only the fingerprint is checked and set.
//
// A new fingerprint is kept for t.DedupTTL, or, when t.PendingTTL is set,
// pending for t.PendingTTL until Confirm.
//
// An error (invalid ticket, Redis unreachable or slow) means nothing is
// known; the caller decides whether to proceed without the gate.
func (g *Gate) Admit(ctx context.Context, t ingest.Ticket) (ingest.Admission, error) {
	if t.IntegrationID == "" || t.EventID == "" {
		return ingest.Admission{}, errors.New("admit: integration id and event id are required")
	}
	ttl, pending := t.DedupTTL, t.PendingTTL > 0
	if pending {
		ttl = t.PendingTTL
	}
	if t.NoToken {
		if ttl < time.Millisecond {
			return ingest.Admission{}, fmt.Errorf("admit %s/%s: dedup TTL %s must be at least 1ms", t.IntegrationID, t.EventID, ttl)
		}
		n, err := fingerprintScript.Run(ctx, g.c, []string{dedupKey(t.IntegrationID, t.EventID)},
			ttl.Milliseconds(), fingerprintValue(pending)).Int64()
		if err != nil {
			return ingest.Admission{}, fmt.Errorf("admit %s/%s: %w", t.IntegrationID, t.EventID, err)
		}
		return ingest.Admission{Allowed: true, Duplicate: n == 1, InFlight: n == 2}, nil
	}
	res, err := takeToken(ctx, g.c, take{
		BucketKey:          ingestBucketKey(t.IntegrationID),
		Capacity:           t.Limit,
		Interval:           t.Window,
		FingerprintKey:     dedupKey(t.IntegrationID, t.EventID),
		FingerprintTTL:     ttl,
		FingerprintPending: pending,
	})
	if err != nil {
		return ingest.Admission{}, fmt.Errorf("admit %s/%s: %w", t.IntegrationID, t.EventID, err)
	}
	return ingest.Admission{Allowed: res.Allowed, RetryAfter: res.RetryAfter, Duplicate: res.Duplicate, InFlight: res.InFlight}, nil
}

// Confirm keeps the event's fingerprint for t.DedupTTL: the event is on the
// log. It sets the fingerprint whether or not the pending one is still
// there, as the event is on the log either way.
func (g *Gate) Confirm(ctx context.Context, t ingest.Ticket) error {
	if t.DedupTTL < time.Millisecond {
		return fmt.Errorf("confirm %s/%s: dedup TTL %s must be at least 1ms", t.IntegrationID, t.EventID, t.DedupTTL)
	}
	if err := g.c.Set(ctx, dedupKey(t.IntegrationID, t.EventID), fingerprintKept, t.DedupTTL).Err(); err != nil {
		return fmt.Errorf("confirm %s/%s: %w", t.IntegrationID, t.EventID, err)
	}
	return nil
}

// Release deletes the event's fingerprint so that the event is admitted
// again; releasing an absent fingerprint is not an error. The token taken
// by Admit is not returned.
func (g *Gate) Release(ctx context.Context, integrationID, eventID string) error {
	if err := g.c.Del(ctx, dedupKey(integrationID, eventID)).Err(); err != nil {
		return fmt.Errorf("release %s/%s: %w", integrationID, eventID, err)
	}
	return nil
}

// Ping reports whether Redis answers, for health checks.
func (g *Gate) Ping(ctx context.Context) error {
	if err := g.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

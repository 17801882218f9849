package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/ingest"
)

var _ ingest.Gate = (*Gate)(nil)

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
// taken for a duplicate. With one it sets the event's fingerprint for
// t.DedupTTL if absent, and answers Duplicate when it was already there.
// Duplicates therefore use tokens too.
//
// An error (invalid ticket, Redis unreachable or slow) means nothing is
// known; the caller decides whether to proceed without the gate.
func (g *Gate) Admit(ctx context.Context, t ingest.Ticket) (ingest.Admission, error) {
	if t.IntegrationID == "" || t.EventID == "" {
		return ingest.Admission{}, errors.New("admit: integration id and event id are required")
	}
	res, err := takeToken(ctx, g.c, take{
		BucketKey:      ingestBucketKey(t.IntegrationID),
		Capacity:       t.Limit,
		Interval:       t.Window,
		FingerprintKey: dedupKey(t.IntegrationID, t.EventID),
		FingerprintTTL: t.DedupTTL,
	})
	if err != nil {
		return ingest.Admission{}, fmt.Errorf("admit %s/%s: %w", t.IntegrationID, t.EventID, err)
	}
	return ingest.Admission{Allowed: res.Allowed, RetryAfter: res.RetryAfter, Duplicate: res.Duplicate}, nil
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

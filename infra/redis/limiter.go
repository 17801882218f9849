package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/ingest"
)

var _ ingest.Limiter = (*Limiter)(nil)

// Limiter is the SoftPro API rate limit of each integration: a token bucket
// under "ratelimit:api:<integration id>" run by the same Lua script as the
// ingest gate, on Redis's clock, so every process shares it.
//
// The bucket is shaped so that a quota of L requests per window W holds
// over any sliding window, not only on average: it holds B = max(1, L/10)
// tokens and refills L-B per W, so a window sees at most B + (L-B) = L
// requests. The sustained rate is therefore L-B per W (90/min for 100/min);
// a quota of 1 allows one request per window.
//
// It is safe for concurrent use.
type Limiter struct {
	c *goredis.Client
}

// NewLimiter returns a limiter over c, which is required.
func NewLimiter(c *goredis.Client) *Limiter {
	if c == nil {
		panic("redis: NewLimiter needs a client")
	}
	return &Limiter{c: c}
}

// APIBucketKey is the Redis key of an integration's API bucket.
func APIBucketKey(integrationID string) string { return "ratelimit:api:" + integrationID }

// shape turns a quota into the bucket's capacity and refill interval (the
// time to refill capacity tokens).
func shape(q ingest.Quota) (capacity int, interval time.Duration, err error) {
	if q.Limit < 1 || q.Window < time.Millisecond {
		return 0, 0, fmt.Errorf("quota %d per %s: limit and window must be positive", q.Limit, q.Window)
	}
	if q.Limit == 1 {
		return 1, q.Window, nil
	}
	capacity = max(1, q.Limit/10)
	refill := q.Limit - capacity
	interval = time.Duration(int64(q.Window) * int64(capacity) / int64(refill))
	return capacity, max(interval, time.Millisecond), nil
}

func (l *Limiter) take(ctx context.Context, id string, q ingest.Quota) (taken, error) {
	capacity, interval, err := shape(q)
	if err != nil {
		return taken{}, err
	}
	return takeToken(ctx, l.c, take{BucketKey: APIBucketKey(id), Capacity: capacity, Interval: interval})
}

// RecordRequest takes one token if there is one: the original
// recordRequest. It reports whether it did and, if not, how long until one
// is back.
func (l *Limiter) RecordRequest(ctx context.Context, id string, q ingest.Quota) (ok bool, retryAfter time.Duration, err error) {
	res, err := l.take(ctx, id, q)
	if err != nil {
		return false, 0, fmt.Errorf("record request %s: %w", id, err)
	}
	return res.Allowed, res.RetryAfter, nil
}

// Wait blocks until a token is available and takes it (the original
// waitForQuota followed by recordRequest, atomically), or until ctx ends;
// when ctx's deadline comes before the next token, it returns
// ingest.ErrQuotaExhausted at once instead of sleeping until then.
func (l *Limiter) Wait(ctx context.Context, id string, q ingest.Quota) error {
	for {
		ok, wait, err := l.RecordRequest(ctx, id, q)
		if err != nil || ok {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("wait for quota %s: next request in %s: %w", id, wait.Round(time.Millisecond), ingest.ErrQuotaExhausted)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for quota %s: %w", id, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// peekScript answers {whole tokens now, ms until one token} without
// changing the bucket; a missing bucket is full.
//
// KEYS[1] bucket; ARGV[1] capacity; ARGV[2] refill interval ms.
var peekScript = goredis.NewScript(`
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  return {capacity, 0}
end
if now > ts then
  tokens = tokens + (now - ts) * capacity / interval
end
if tokens > capacity then
  tokens = capacity
end
if tokens >= 1 then
  return {math.floor(tokens), 0}
end
return {0, math.ceil((1 - tokens) * interval / capacity / 1000)}
`)

// RemainingQuota is the number of requests that may be made right now (the
// original getRemainingQuota) and, when none, how long until one may.
func (l *Limiter) RemainingQuota(ctx context.Context, id string, q ingest.Quota) (remaining int, retryAfter time.Duration, err error) {
	capacity, interval, err := shape(q)
	if err != nil {
		return 0, 0, err
	}
	res, err := peekScript.Run(ctx, l.c, []string{APIBucketKey(id)}, capacity, interval.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("remaining quota %s: %w", id, err)
	}
	if len(res) != 2 {
		return 0, 0, errors.New("remaining quota: unexpected script answer")
	}
	return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
}

// CanMakeRequest reports whether a request may be made now without taking
// a token (the original canMakeRequest).
func (l *Limiter) CanMakeRequest(ctx context.Context, id string, q ingest.Quota) (bool, error) {
	n, _, err := l.RemainingQuota(ctx, id, q)
	return n > 0, err
}

// drainScript empties the bucket so that it refills only after wait ms:
// tokens become -(wait × rate), stamped now. A bucket already deeper in
// debt is left alone.
//
// KEYS[1] bucket; ARGV[1] capacity; ARGV[2] refill interval ms; ARGV[3]
// wait ms; ARGV[4] bucket TTL ms.
var drainScript = goredis.NewScript(`
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2]) * 1000
local wait = tonumber(ARGV[3]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local debt = -wait * capacity / interval
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens ~= nil and ts ~= nil then
  if now > ts then
    tokens = tokens + (now - ts) * capacity / interval
  end
  if tokens < debt then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', debt), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.floor(ARGV[4]))
return 1
`)

// Drain records that SoftPro answered 429: the bucket is emptied and stays
// empty for retryAfter, so no process sharing it sends before SoftPro
// allows.
func (l *Limiter) Drain(ctx context.Context, id string, q ingest.Quota, retryAfter time.Duration) error {
	capacity, interval, err := shape(q)
	if err != nil {
		return err
	}
	ttl := 2*interval + retryAfter
	if err := drainScript.Run(ctx, l.c, []string{APIBucketKey(id)}, capacity, interval.Milliseconds(),
		retryAfter.Milliseconds(), ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("drain quota %s: %w", id, err)
	}
	return nil
}

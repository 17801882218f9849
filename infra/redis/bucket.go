package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// bucketScript is a token bucket, optionally followed by a set-if-absent
// fingerprint, run atomically in one round trip.
//
// The bucket holds up to capacity tokens and refills continuously at
// capacity tokens per interval, using the server's clock (TIME), so every
// instance of the service shares one limit whatever their clocks say. It is
// stored as a hash {tokens, ts (µs)} that expires after bucket_ttl of
// idleness; a missing bucket is a full one.
//
// KEYS[1]  bucket key
// KEYS[2]  optional fingerprint key, set only when a token was taken
// ARGV[1]  capacity (tokens)
// ARGV[2]  refill interval in ms (time to refill an empty bucket)
// ARGV[3]  cost (tokens to take)
// ARGV[4]  bucket TTL in ms
// ARGV[5]  fingerprint TTL in ms (with KEYS[2])
// ARGV[6]  fingerprint value (with KEYS[2]): kept or pending
//
// Returns {allowed 0|1, retry-after ms, duplicate 0|1|2, tokens left};
// duplicate is 2 when the fingerprint found is pending.
// Numbers are written with string.format because Redis's Lua prints
// numbers with 14 significant digits, too few for a µs timestamp.
var bucketScript = goredis.NewScript(setFingerprintLua + `
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2]) * 1000
local cost = tonumber(ARGV[3])
local bucket_ttl = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = capacity, now
elseif now > ts then
  tokens = tokens + (now - ts) * capacity / interval
  ts = now
end
if tokens > capacity then
  tokens = capacity
end

if tokens < cost then
  local wait = math.ceil((cost - tokens) * interval / capacity / 1000)
  if wait < 1 then
    wait = 1
  end
  return {0, wait, 0, math.floor(tokens)}
end

tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], bucket_ttl)

local duplicate = 0
if KEYS[2] then
  duplicate = set_fingerprint(KEYS[2], ARGV[6], ARGV[5])
end
return {1, 0, duplicate, math.floor(tokens)}
`)

// setFingerprintLua defines set_fingerprint(key, value, ttl ms), which the
// scripts share: it sets the fingerprint if absent and returns 0, or
// returns 1 when a kept one was there and 2 when a pending one was.
const setFingerprintLua = `
local function set_fingerprint(key, value, ttl)
  if redis.call('SET', key, value, 'NX', 'PX', ttl) then
    return 0
  end
  local v = redis.call('GET', key)
  if v == false or v == '` + fingerprintPending + `' then
    return 2
  end
  return 1
end
`

// take is one request to bucketScript.
type take struct {
	BucketKey string
	// Capacity tokens refill per Interval; the bucket holds at most Capacity.
	Capacity int
	Interval time.Duration
	// Cost is the number of tokens to take; default 1.
	Cost int
	// FingerprintKey, when set, is SET NX with FingerprintTTL after a token
	// was taken; if it already existed the result is a duplicate, or in
	// flight when it is pending. FingerprintPending sets a pending one.
	FingerprintKey     string
	FingerprintTTL     time.Duration
	FingerprintPending bool
}

// taken is bucketScript's answer.
type taken struct {
	Allowed    bool
	RetryAfter time.Duration // when not allowed: until Cost tokens are back
	Duplicate  bool
	InFlight   bool // the fingerprint found is pending
	Remaining  int  // whole tokens left
}

func (r *take) validate() error {
	if r.Cost == 0 {
		r.Cost = 1
	}
	var errs []error
	if r.BucketKey == "" {
		errs = append(errs, errors.New("bucket key is empty"))
	}
	if r.Capacity <= 0 {
		errs = append(errs, fmt.Errorf("limit %d must be positive", r.Capacity))
	}
	if r.Interval < time.Millisecond {
		errs = append(errs, fmt.Errorf("window %s must be at least 1ms", r.Interval))
	}
	if r.Cost < 0 || r.Cost > r.Capacity {
		errs = append(errs, fmt.Errorf("cost %d must be between 1 and the limit", r.Cost))
	}
	if r.FingerprintKey != "" && r.FingerprintTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("dedup TTL %s must be at least 1ms", r.FingerprintTTL))
	}
	return errors.Join(errs...)
}

// takeToken runs bucketScript: EVALSHA, falling back to EVAL when the
// server does not have the script cached.
func takeToken(ctx context.Context, c goredis.Scripter, r take) (taken, error) {
	if err := r.validate(); err != nil {
		return taken{}, err
	}
	keys := []string{r.BucketKey}
	args := []any{r.Capacity, r.Interval.Milliseconds(), r.Cost, 2 * r.Interval.Milliseconds()}
	if r.FingerprintKey != "" {
		keys = append(keys, r.FingerprintKey)
		args = append(args, r.FingerprintTTL.Milliseconds(), fingerprintValue(r.FingerprintPending))
	}
	res, err := bucketScript.Run(ctx, c, keys, args...).Int64Slice()
	if err != nil {
		return taken{}, err
	}
	if len(res) != 4 {
		return taken{}, fmt.Errorf("token bucket script returned %d values, want 4", len(res))
	}
	return taken{
		Allowed:    res[0] == 1,
		RetryAfter: time.Duration(res[1]) * time.Millisecond,
		Duplicate:  res[2] == 1,
		InFlight:   res[2] == 2,
		Remaining:  int(res[3]),
	}, nil
}

// Fingerprint values. A kept fingerprint marks an event that is on the log
// (fingerprints of earlier versions hold "1" as well); a pending one marks
// an append under way.
const (
	fingerprintKept    = "1"
	fingerprintPending = "pending"
)

func fingerprintValue(pending bool) string {
	if pending {
		return fingerprintPending
	}
	return fingerprintKept
}

// fingerprintScript is the fingerprint half of bucketScript alone, for a
// delivery that already holds a token and checks the fingerprint again.
//
// KEYS[1]  fingerprint key
// ARGV[1]  fingerprint TTL in ms
// ARGV[2]  fingerprint value
//
// Returns 0 when it set the fingerprint, 1 when a kept one was there, 2
// when a pending one was.
var fingerprintScript = goredis.NewScript(setFingerprintLua + `
return set_fingerprint(KEYS[1], ARGV[2], ARGV[1])
`)

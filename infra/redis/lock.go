package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/ingest"
)

var _ ingest.Locker = (*Locker)(nil)

// Locker holds locks as Redis keys whose value is the owner's token (SET NX
// PX). Extend and Unlock compare the token in a Lua script, so only the
// owner extends or releases a lock; one left by a dead process expires with
// its TTL. It is safe for concurrent use.
type Locker struct {
	c     *goredis.Client
	owner string
}

// NewLocker returns a locker over c, which is required. Tokens start with
// host:pid, so a lock's holder can be told apart in status answers.
func NewLocker(c *goredis.Client) *Locker {
	if c == nil {
		panic("redis: NewLocker needs a client")
	}
	host, _ := os.Hostname()
	return &Locker{c: c, owner: fmt.Sprintf("%s:%d", host, os.Getpid())}
}

// TryLock takes key for ttl when nobody holds it and returns the new
// owner's token.
func (l *Locker) TryLock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	token := l.owner + ":" + hex.EncodeToString(b[:])
	ok, err := l.c.SetArgs(ctx, key, token, goredis.SetArgs{Mode: "NX", TTL: ttl}).Result()
	if errors.Is(err, goredis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("lock %s: %w", key, err)
	}
	return token, ok == "OK", nil
}

var extendScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

var unlockScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Extend resets the lock's TTL if token still owns it, and reports whether
// it did.
func (l *Locker) Extend(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	n, err := extendScript.Run(ctx, l.c, []string{key}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("extend lock %s: %w", key, err)
	}
	return n == 1, nil
}

// Unlock releases the lock if token owns it; releasing a lock that expired
// or belongs to another owner does nothing.
func (l *Locker) Unlock(ctx context.Context, key, token string) error {
	if err := unlockScript.Run(ctx, l.c, []string{key}, token).Err(); err != nil {
		return fmt.Errorf("unlock %s: %w", key, err)
	}
	return nil
}

// Holder returns the token holding key and its remaining TTL; an empty
// token means the lock is free.
func (l *Locker) Holder(ctx context.Context, key string) (string, time.Duration, error) {
	pipe := l.c.Pipeline()
	get := pipe.Get(ctx, key)
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return "", 0, fmt.Errorf("lock holder %s: %w", key, err)
	}
	token, err := get.Result()
	if errors.Is(err, goredis.Nil) {
		return "", 0, nil
	}
	return token, max(ttl.Val(), 0), err
}

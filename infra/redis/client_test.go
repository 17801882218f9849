package redis

import (
	"testing"
	"time"
)

func TestNewClientOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		cfg      ClientConfig
		addr     string
		password string
		db       int
		dial     time.Duration
		pool     int
	}{
		{name: "defaults", cfg: ClientConfig{}, addr: "localhost:6379", dial: DefaultDialTimeout, pool: DefaultPoolSize},
		{name: "host and port", cfg: ClientConfig{Host: "redis.internal", Port: 6380, Password: "pw", DialTimeout: time.Second},
			addr: "redis.internal:6380", password: "pw", dial: time.Second, pool: DefaultPoolSize},
		{name: "url wins", cfg: ClientConfig{URL: "redis://:secret@10.0.0.5:6390/2", Host: "ignored", Port: 1},
			addr: "10.0.0.5:6390", password: "secret", db: 2, dial: DefaultDialTimeout, pool: DefaultPoolSize},
		{name: "url parameters win over defaults", cfg: ClientConfig{URL: "redis://h:1/0?dial_timeout=2s&pool_size=8"},
			addr: "h:1", dial: 2 * time.Second, pool: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tc.cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer c.Close()
			o := c.Options()
			if o.Addr != tc.addr || o.Password != tc.password || o.DB != tc.db || o.DialTimeout != tc.dial || o.PoolSize != tc.pool {
				t.Fatalf("options addr=%q password=%q db=%d dial=%v pool=%d", o.Addr, o.Password, o.DB, o.DialTimeout, o.PoolSize)
			}
			// go-redis stores "no retries" (-1) as 0 once the client is built.
			if o.ReadTimeout != DefaultIOTimeout || o.WriteTimeout != DefaultIOTimeout || o.MaxRetries != 0 || !o.ContextTimeoutEnabled {
				t.Fatalf("fail-fast options not applied: read=%v write=%v retries=%d ctx=%v",
					o.ReadTimeout, o.WriteTimeout, o.MaxRetries, o.ContextTimeoutEnabled)
			}
		})
	}
	for _, tc := range []struct {
		name string
		cfg  ClientConfig
	}{
		{name: "bad scheme", cfg: ClientConfig{URL: "http://localhost:6379"}},
		{name: "port out of range", cfg: ClientConfig{Port: 70000}},
		{name: "negative dial timeout", cfg: ClientConfig{DialTimeout: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if c, err := NewClient(tc.cfg); err == nil {
				c.Close()
				t.Fatal("NewClient succeeded, want an error")
			}
		})
	}
}

// Package redis holds the Redis adapters: the client, and the ingest gate
// that rate-limits and de-duplicates webhooks in one round trip.
//
// Redis makes the service faster, not correct: callers treat its errors as
// "degraded" and carry on, so every operation here fails fast (short
// timeouts, no retries) rather than holding a webhook up.
package redis

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Client defaults.
const (
	DefaultDialTimeout = 500 * time.Millisecond
	// DefaultIOTimeout bounds each socket read and write.
	DefaultIOTimeout = 500 * time.Millisecond
	// DefaultPoolSize suits a webhook endpoint serving many requests at once.
	DefaultPoolSize = 64
)

// ClientConfig says where Redis is. The zero value means localhost:6379
// without a password.
type ClientConfig struct {
	// URL, when set, wins over Host, Port and Password, e.g.
	// redis://:password@host:6379/0 or rediss:// for TLS. Query parameters
	// such as dial_timeout or pool_size override the defaults below.
	URL      string
	Host     string // default "localhost"
	Port     int    // default 6379
	Password string
	// DialTimeout bounds connecting; default DefaultDialTimeout.
	DialTimeout time.Duration
}

func (c *ClientConfig) setDefaults() {
	if c.Host == "" {
		c.Host = "localhost"
	}
	if c.Port == 0 {
		c.Port = 6379
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
}

// Validate reports every problem with the configuration.
func (c ClientConfig) Validate() error {
	var errs []error
	if c.URL == "" && (c.Port < 1 || c.Port > 65535) {
		errs = append(errs, fmt.Errorf("redis port %d is out of range", c.Port))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("redis dial timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// NewClient returns a client for cfg tuned for the webhook path: dial, read
// and write timeouts of about half a second, no automatic retries (a failed
// command is reported at once; the caller degrades), context deadlines
// honoured, and a pool of DefaultPoolSize connections. It does not connect;
// the first command does. The caller must Close the client.
func NewClient(cfg ClientConfig) (*goredis.Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new redis client: %w", err)
	}
	var opts *goredis.Options
	if cfg.URL != "" {
		var err error
		if opts, err = goredis.ParseURL(cfg.URL); err != nil {
			return nil, fmt.Errorf("new redis client: parse REDIS URL: %w", err)
		}
	} else {
		opts = &goredis.Options{
			Addr:     net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
			Password: cfg.Password,
		}
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = cfg.DialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultIOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultIOTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = -1 // go-redis reads 0 as "3 retries"; -1 is none.
	}
	if opts.DialerRetries == 0 {
		opts.DialerRetries = 1 // Fail fast when Redis is down; the next command dials again.
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = DefaultPoolSize
	}
	opts.ContextTimeoutEnabled = true
	return goredis.NewClient(opts), nil
}

package app

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/redis"
)

// closers releases what a constructor acquired, last first.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }

func (c *closers) closeAll() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// OpenDatabase connects to DATABASE_URL, creating the database first when
// create is set, and applies the migrations. The caller closes the pool.
func OpenDatabase(ctx context.Context, cfg Config, create bool) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, create)
	if err != nil {
		return nil, err
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// newRedisClient connects to REDIS_URL, or REDIS_HOST/PORT/PASSWORD.
func newRedisClient(cfg Config) (*goredis.Client, error) {
	return redis.NewClient(redis.ClientConfig{URL: cfg.RedisURL, Host: cfg.RedisHost, Port: cfg.RedisPort, Password: cfg.RedisPassword})
}

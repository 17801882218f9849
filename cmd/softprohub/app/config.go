// Package app wires softprohub together from its configuration: the
// binaries in cmd and the black-box tests build the same system through it.
package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/roisystems/softprohub/infra/kafka"
)

// Config is every environment variable softprohub reads. Only this package
// reads the environment; everything else receives values.
type Config struct {
	// Original system's variables.
	RedisHost           string `env:"REDIS_HOST" envDefault:"localhost"`
	RedisPort           int    `env:"REDIS_PORT" envDefault:"6379"`
	RedisPassword       string `env:"REDIS_PASSWORD"`
	QueueConcurrency    int    `env:"QUEUE_CONCURRENCY" envDefault:"5"`
	QueueMaxRetries     int    `env:"QUEUE_MAX_RETRIES" envDefault:"5"`
	QueueRetryDelayMs   int    `env:"QUEUE_RETRY_DELAY" envDefault:"2000"`
	WebhookSignatureTTL int    `env:"WEBHOOK_SIGNATURE_TTL" envDefault:"300"`
	WebhookDedupTTL     int    `env:"WEBHOOK_DEDUP_TTL" envDefault:"86400"`
	RateLimitDefault    int    `env:"RATE_LIMIT_DEFAULT" envDefault:"100"`
	RateLimitWindowMs   int    `env:"RATE_LIMIT_WINDOW" envDefault:"60000"`
	SyncMinInterval     int    `env:"SYNC_MIN_INTERVAL" envDefault:"5"`
	SyncDefaultInterval int    `env:"SYNC_DEFAULT_INTERVAL" envDefault:"15"`

	// softprohub's own.
	RedisURL           string        `env:"REDIS_URL"`
	DatabaseURL        string        `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/softprohub?sslmode=disable"`
	KafkaBrokers       []string      `env:"KAFKA_BROKERS" envSeparator:","`
	KafkaPartitions    int           `env:"KAFKA_PARTITIONS" envDefault:"24"`
	KafkaReplication   int           `env:"KAFKA_REPLICATION" envDefault:"-1"`
	KafkaEmbeddedPort  int           `env:"KAFKA_EMBEDDED_PORT" envDefault:"9092"`
	KafkaAppendTimeout time.Duration `env:"KAFKA_APPEND_TIMEOUT" envDefault:"10s"`
	HTTPAddr           string        `env:"HTTP_ADDR" envDefault:":8080"`
	HTTPReadTimeout    time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"30s"`
	DataDir            string        `env:"DATA_DIR" envDefault:"./data"`
	JWTSecret          string        `env:"JWT_SECRET"`
	SecretsKey         string        `env:"SECRETS_KEY"`
	IngestRateLimit    int           `env:"INGEST_RATE_LIMIT" envDefault:"6000"`
	WebhookMaxBody     int64         `env:"WEBHOOK_MAX_BODY" envDefault:"983040"`
	WebhookSecretGrace time.Duration `env:"WEBHOOK_SECRET_GRACE" envDefault:"24h"`
	LogLevel           string        `env:"LOG_LEVEL" envDefault:"info"`
	// SoftProAPIURL is the base URL of SoftPro API connections that do not
	// set their own; "{integrationId}" in it is replaced by the integration's id.
	SoftProAPIURL string `env:"SOFTPRO_API_URL"`
	// SyncStagger is the least time between two scheduled run starts of a
	// process, across integrations; 0 starts them as they fall due.
	SyncStagger time.Duration `env:"SYNC_STAGGER" envDefault:"10s"`
}

// LoadConfig reads the process environment and reports every problem at
// once. It is the only place softprohub reads the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := env.Parse(&c); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, c.Validate()
}

// DefaultConfig is the configuration of an empty environment.
func DefaultConfig() Config {
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: map[string]string{}}); err != nil {
		panic(err)
	}
	return c
}

// Warnings names settings that work but weaken a guarantee, for the
// process to log at start.
func (c Config) Warnings() []string {
	var out []string
	if c.WebhookDedupTTL < 2*c.WebhookSignatureTTL {
		out = append(out, fmt.Sprintf("WEBHOOK_DEDUP_TTL (%d s) is below twice WEBHOOK_SIGNATURE_TTL (%d s): "+
			"a copy of a webhook sent again late in its time window can be appended again (the projections still apply each event id once)",
			c.WebhookDedupTTL, c.WebhookSignatureTTL))
	}
	if n := len(c.JWTSecret); n > 0 && n < MinJWTSecretBytes {
		out = append(out, fmt.Sprintf("JWT_SECRET is %d bytes, fewer than %d: a token's signature can then be guessed offline "+
			"and an admin token forged (generate one with openssl rand -hex 32)", n, MinJWTSecretBytes))
	}
	return out
}

// MinJWTSecretBytes is the shortest JWT_SECRET that does not warn: an
// HS256 key as long as its hash (RFC 7518, section 3.2).
const MinJWTSecretBytes = 32

// Validate checks ranges; secrets are checked by requireSecrets.
func (c Config) Validate() error {
	var errs []error
	positive := map[string]int{
		"QUEUE_CONCURRENCY": c.QueueConcurrency, "QUEUE_MAX_RETRIES": c.QueueMaxRetries,
		"WEBHOOK_DEDUP_TTL": c.WebhookDedupTTL, "RATE_LIMIT_DEFAULT": c.RateLimitDefault,
		"RATE_LIMIT_WINDOW": c.RateLimitWindowMs, "SYNC_MIN_INTERVAL": c.SyncMinInterval,
		"SYNC_DEFAULT_INTERVAL": c.SyncDefaultInterval, "KAFKA_PARTITIONS": c.KafkaPartitions,
		"INGEST_RATE_LIMIT": c.IngestRateLimit, "WEBHOOK_SIGNATURE_TTL": c.WebhookSignatureTTL,
	}
	for name, v := range positive {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	if c.QueueRetryDelayMs < 0 {
		errs = append(errs, fmt.Errorf("QUEUE_RETRY_DELAY must not be negative"))
	}
	if c.WebhookMaxBody <= 0 || c.WebhookMaxBody > kafka.MaxPayloadBytes {
		errs = append(errs, fmt.Errorf("WEBHOOK_MAX_BODY must be between 1 and %d (a larger body does not fit one record of the event log)", kafka.MaxPayloadBytes))
	}
	if c.SyncDefaultInterval < c.SyncMinInterval {
		errs = append(errs, fmt.Errorf("SYNC_DEFAULT_INTERVAL (%d) must be at least SYNC_MIN_INTERVAL (%d)", c.SyncDefaultInterval, c.SyncMinInterval))
	}
	if c.KafkaAppendTimeout <= 0 {
		errs = append(errs, fmt.Errorf("KAFKA_APPEND_TIMEOUT must be positive"))
	}
	if c.HTTPReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("HTTP_READ_TIMEOUT must be positive"))
	}
	if c.WebhookSecretGrace < 0 {
		errs = append(errs, fmt.Errorf("WEBHOOK_SECRET_GRACE must not be negative"))
	}
	if c.SyncStagger < 0 {
		errs = append(errs, fmt.Errorf("SYNC_STAGGER must not be negative"))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RequireSecrets enforces JWT_SECRET and SECRETS_KEY outside dev mode; in
// dev mode missing ones are generated once and kept in DATA_DIR so tokens
// and sealed secrets survive restarts. It is for serve; the other commands
// use UseSecrets.
func (c *Config) RequireSecrets(dev bool) (generated bool, err error) {
	return c.requireSecrets(dev, true)
}

// UseSecrets is RequireSecrets for the commands that work beside a
// server: in dev mode they read the secrets serve --dev wrote and never
// write new ones (a key of their own would seal secrets the server cannot
// open).
func (c *Config) UseSecrets(dev bool) error {
	_, err := c.requireSecrets(dev, false)
	return err
}

func (c *Config) requireSecrets(dev, create bool) (generated bool, err error) {
	if !dev {
		var missing []string
		if c.JWTSecret == "" {
			missing = append(missing, "JWT_SECRET")
		}
		if c.SecretsKey == "" {
			missing = append(missing, "SECRETS_KEY")
		}
		if len(missing) > 0 {
			return false, fmt.Errorf("%s must be set (or run with --dev for a local setup)", strings.Join(missing, " and "))
		}
		return false, nil
	}
	if c.JWTSecret != "" && c.SecretsKey != "" {
		return false, nil
	}
	var ds DevSecrets
	if create {
		ds, generated, err = loadDevSecrets(c.DataDir)
	} else if ds, err = ReadDevSecrets(c.DataDir); err != nil {
		err = fmt.Errorf("--dev: %w (serve --dev, which make run starts, writes them on its first start; or set JWT_SECRET and SECRETS_KEY)", err)
	}
	if err != nil {
		return false, err
	}
	if c.JWTSecret == "" {
		c.JWTSecret = ds.JWT
	}
	if c.SecretsKey == "" {
		c.SecretsKey = ds.Key
	}
	return generated, nil
}

// DevSecrets are the secrets `serve --dev` generates when none are set.
type DevSecrets struct{ JWT, Key string }

// DevSecretsPath is where dev mode keeps its generated secrets.
func DevSecretsPath(dataDir string) string { return filepath.Join(dataDir, "dev-secrets.env") }

// ReadDevSecrets reads DATA_DIR/dev-secrets.env.
func ReadDevSecrets(dataDir string) (DevSecrets, error) {
	b, err := os.ReadFile(DevSecretsPath(dataDir))
	if err != nil {
		return DevSecrets{}, fmt.Errorf("dev secrets: %w", err)
	}
	var s DevSecrets
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "JWT_SECRET":
			s.JWT = v
		case "SECRETS_KEY":
			s.Key = v
		}
	}
	if s.JWT == "" || s.Key == "" {
		return s, fmt.Errorf("dev secrets: %s is incomplete", DevSecretsPath(dataDir))
	}
	return s, nil
}

// loadDevSecrets reads DATA_DIR/dev-secrets.env, creating it on first use.
func loadDevSecrets(dataDir string) (DevSecrets, bool, error) {
	path := DevSecretsPath(dataDir)
	if s, err := ReadDevSecrets(dataDir); err == nil {
		return s, false, nil
	}
	s := DevSecrets{JWT: randomHex(32), Key: randomHex(32)}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return s, false, fmt.Errorf("dev secrets: %w", err)
	}
	body := "# generated by softprohub serve --dev; local use only\nJWT_SECRET=" + s.JWT + "\nSECRETS_KEY=" + s.Key + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return s, false, fmt.Errorf("dev secrets: %w", err)
	}
	return s, true, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger is JSON in production and text in dev mode.
func NewLogger(level string, dev bool) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if dev {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// Brokers returns the configured brokers, or the embedded broker's address.
func (c Config) Brokers() []string {
	if len(c.KafkaBrokers) > 0 {
		return c.KafkaBrokers
	}
	return []string{fmt.Sprintf("127.0.0.1:%d", c.KafkaEmbeddedPort)}
}

// Embedded reports whether softprohub runs its own broker.
func (c Config) Embedded() bool { return len(c.KafkaBrokers) == 0 }

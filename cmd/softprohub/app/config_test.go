package app

import (
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/infra/kafka"
)

// The webhook body limit may not exceed what one record of the log holds.
func TestConfigBoundsTheWebhookBodyByTheLogsRecordSize(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.JWTSecret, cfg.SecretsKey = "jwt-secret-for-test", "secrets-key-for-test"
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "WEBHOOK_MAX_BODY") {
		t.Fatalf("default: %v", err)
	}
	for _, n := range []int64{0, kafka.MaxPayloadBytes + 1, 1 << 20} {
		cfg.WebhookMaxBody = n
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "WEBHOOK_MAX_BODY") {
			t.Errorf("WEBHOOK_MAX_BODY=%d: %v, want it refused", n, err)
		}
	}
	cfg.WebhookMaxBody = kafka.MaxPayloadBytes
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "WEBHOOK_MAX_BODY") {
		t.Errorf("WEBHOOK_MAX_BODY=%d: %v", cfg.WebhookMaxBody, err)
	}
}

// A replay window of 0 seconds would refuse every webhook; it is refused
// at start rather than taken as the default.
func TestConfigRefusesAnEmptyReplayWindow(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.JWTSecret, cfg.SecretsKey = "jwt-secret-for-test", "secrets-key-for-test"
	for _, ttl := range []int{0, -1} {
		cfg.WebhookSignatureTTL = ttl
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "WEBHOOK_SIGNATURE_TTL must be positive") {
			t.Errorf("WEBHOOK_SIGNATURE_TTL=%d: %v, want it refused", ttl, err)
		}
	}
	cfg.WebhookSignatureTTL = 1
	if err := cfg.Validate(); err != nil {
		t.Errorf("WEBHOOK_SIGNATURE_TTL=1: %v", err)
	}
}

// A dedup window shorter than the replay window both sides of now lets a
// late copy through the dedup: allowed, and said at start.
func TestConfigWarnsOfADedupWindowShorterThanTheReplayWindow(t *testing.T) {
	c := DefaultConfig()
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("defaults warn: %v", w)
	}
	c.WebhookSignatureTTL, c.WebhookDedupTTL = 300, 600
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("dedup at twice the signature window warns: %v", w)
	}
	c.WebhookDedupTTL = 599
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "WEBHOOK_DEDUP_TTL (599 s) is below twice WEBHOOK_SIGNATURE_TTL (300 s)") {
		t.Fatalf("warnings %v", w)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a short dedup window is refused: %v", err)
	}
}

// SYNC_STAGGER is a duration, 10 s unless set, and 0 (no stagger) at the
// least.
func TestConfigSyncStagger(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	if cfg.SyncStagger != 10*time.Second {
		t.Fatalf("default SYNC_STAGGER %s, want 10s", cfg.SyncStagger)
	}
	for _, tt := range []struct {
		name    string
		stagger time.Duration
		refused bool
	}{
		{name: "none", stagger: 0},
		{name: "a minute", stagger: time.Minute},
		{name: "negative", stagger: -time.Second, refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.SyncStagger = tt.stagger
			err := c.Validate()
			if refused := err != nil && strings.Contains(err.Error(), "SYNC_STAGGER"); refused != tt.refused {
				t.Errorf("SYNC_STAGGER=%s: %v, want refused %v", tt.stagger, err, tt.refused)
			}
		})
	}
}

// A short JWT_SECRET works, and is said at start.
func TestConfigWarnsOfAShortJWTSecret(t *testing.T) {
	c := DefaultConfig()
	c.JWTSecret = "changeme"
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "JWT_SECRET is 8 bytes, fewer than 32") {
		t.Fatalf("warnings %v", w)
	}
	c.JWTSecret = strings.Repeat("k", 32)
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("a 32-byte secret warns: %v", w)
	}
}

package app

import (
	"strings"
	"testing"

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

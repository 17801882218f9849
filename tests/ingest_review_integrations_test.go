package tests

import (
	"net/http"
	"testing"
)

// Numbers beyond what the store holds are input errors, not server errors.
func TestReviewIntegrationNumbersOutOfRangeAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const huge = 3_000_000_000
	for _, field := range []string{"ingestRateLimit", "rateLimit", "syncFrequency"} {
		status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token,
			map[string]any{"id": e.id("n-" + field), "organizationId": "org", "webhookSecret": "s3cret-value", field: huge})
		if status != http.StatusBadRequest {
			t.Errorf("create with %s=%d: %d %s, want 400", field, huge, status, body)
		}
	}
	id, _ := e.integration("a", nil)
	status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "ingestRateLimit": huge})
	if status != http.StatusBadRequest {
		t.Errorf("config with ingestRateLimit=%d: %d %s, want 400", huge, status, body)
	}
}

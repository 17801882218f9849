package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/domain"
)

// Numbers beyond what the store holds are input errors, not server errors.
func TestIntegrationNumbersOutOfRangeAre400(t *testing.T) {
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
	// A sync frequency the scheduler cannot turn into an interval.
	for _, f := range []int{domain.MaxSyncFrequency + 1, 200_000_000} {
		status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token,
			map[string]any{"id": e.id(fmt.Sprintf("f-%d", f)), "organizationId": "org", "webhookSecret": "s3cret-value", "syncFrequency": f})
		if status != http.StatusBadRequest || !strings.Contains(string(body), "syncFrequency must be at most") {
			t.Errorf("create with syncFrequency=%d: %d %s, want 400 naming the bound", f, status, body)
		}
	}
	if status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token,
		map[string]any{"id": e.id("f-max"), "organizationId": "org", "webhookSecret": "s3cret-value", "syncFrequency": domain.MaxSyncFrequency}); status != http.StatusCreated {
		t.Errorf("create with syncFrequency=%d: %d %s, want 201", domain.MaxSyncFrequency, status, body)
	}
	id, _ := e.integration("a", nil)
	status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "ingestRateLimit": huge})
	if status != http.StatusBadRequest {
		t.Errorf("config with ingestRateLimit=%d: %d %s, want 400", huge, status, body)
	}
}

// Switching an integration to standard-webhooks without a new secret must
// not leave it with secrets that scheme cannot use: every webhook would be
// refused from then on.
func TestSchemeChangeNeedsAUsableSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", nil)
	status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "signatureScheme": "standard-webhooks"})
	if status != http.StatusBadRequest {
		t.Fatalf("scheme change keeping %q: %d %s, want 400", secret, status, body)
	}
	if r := e.send(signedWebhook(id, secret, payload("evt_1", domain.TaskCreated, `{}`))); r.Status != 200 {
		t.Fatalf("the refused change altered the integration: %d %s", r.Status, r.Raw)
	}
	// A softpro secret that decodes as standard-webhooks, to a key too
	// short (none at all here), is no usable one either.
	weak, _ := e.integration("weak", map[string]any{"webhookSecret": "whsec_\r\n\r\n"})
	status, body = e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": weak, "signatureScheme": "standard-webhooks"})
	if status != http.StatusBadRequest {
		t.Fatalf("scheme change keeping a secret of no key: %d %s, want 400", status, body)
	}
	std := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	status, body = e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "signatureScheme": "standard-webhooks", "webhookSecret": std})
	if status != http.StatusOK {
		t.Fatalf("scheme change with a new secret: %d %s", status, body)
	}

	// Disabling takes effect at once.
	status, body = e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "enabled": false})
	if status != http.StatusOK {
		t.Fatalf("disable: %d %s", status, body)
	}
	if r := e.send(signedWebhook(id, secret, payload("evt_2", domain.TaskCreated, `{}`))); r.Status != 403 || r.code() != "INTEGRATION_DISABLED" {
		t.Fatalf("webhook to a disabled integration: %d %s", r.Status, r.Raw)
	}
}

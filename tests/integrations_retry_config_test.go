package tests

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestWebhookConfigRetryConfigKeepsFieldsLeftOut: a PUT …/webhooks/config
// whose retryConfig names one field changes that field only.
func TestWebhookConfigRetryConfigKeepsFieldsLeftOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("retrycfg", map[string]any{"webhookRetryConfig": map[string]any{"maxRetries": 5, "initialDelay": 2000}})
	retry := func(raw []byte) map[string]any {
		t.Helper()
		var resp struct {
			Data struct {
				Integration struct {
					WebhookRetryConfig map[string]any `json:"webhookRetryConfig"`
				} `json:"integration"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		return resp.Data.Integration.WebhookRetryConfig
	}
	status, raw := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "retryConfig": map[string]any{"maxRetries": 7}})
	if status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	if rc := retry(raw); rc["maxRetries"] != float64(7) || rc["initialDelay"] != float64(2000) {
		t.Fatalf("after setting maxRetries only: %v", rc)
	}
	status, raw = e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	if rc := retry(raw); status != http.StatusOK || rc["maxRetries"] != float64(7) || rc["initialDelay"] != float64(2000) {
		t.Fatalf("GET: %d %v", status, rc)
	}
	// A bad value is still refused.
	if status, raw := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "retryConfig": map[string]any{"initialDelay": -1}}); status != http.StatusBadRequest {
		t.Fatalf("negative initialDelay: %d %s", status, raw)
	}
}

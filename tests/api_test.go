package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	httpapi "github.com/roisystems/softprohub/handlers/http"
)

func TestIntegrationsAdminAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "very-secret-value-" + randomID(4)
	id := e.id("crud")
	status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{
		"id": id, "organizationId": "org_1", "webhookSecret": secret, "syncFrequency": 30,
		"syncTypes": []string{"transactions", "tasks"}, "rateLimit": 50, "ingestRateLimit": 120,
	})
	if status != http.StatusCreated || strings.Contains(string(body), secret) {
		t.Fatalf("create: %d %s", status, body)
	}
	var created struct {
		Success bool
		Data    struct{ Integration map[string]any }
	}
	_ = json.Unmarshal(body, &created)
	in := created.Data.Integration
	if !created.Success || in["id"] != id || in["webhookSecret"] != "***" || in["syncFrequency"] != 30.0 ||
		in["rateLimit"] != 50.0 || in["ingestRateLimit"] != 120.0 || in["signatureScheme"] != "softpro" || in["active"] != true {
		t.Fatalf("created %s", body)
	}

	if status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{"id": id, "organizationId": "org_1"}); status != http.StatusConflict {
		t.Fatalf("duplicate id: %d %s", status, body)
	}
	status, body = e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	if status != 200 || strings.Contains(string(body), secret) || !strings.Contains(string(body), `"webhookSecret":"***"`) {
		t.Fatalf("get: %d %s", status, body)
	}
	if status, _ := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+e.id("missing"), e.Token, nil); status != 404 {
		t.Fatalf("get missing: %d", status)
	}
	status, body = e.do(http.MethodGet, "/api/v1/integrations/softpro", e.Token, nil)
	if status != 200 || !strings.Contains(string(body), id) || strings.Contains(string(body), secret) {
		t.Fatalf("list: %d %s", status, body)
	}

	status, body = e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token, map[string]any{
		"integrationId": id, "enabled": false, "retryConfig": map[string]any{"maxRetries": 3, "initialDelay": 1000},
	})
	if status != 200 || !strings.Contains(string(body), `"webhookEnabled":false`) || !strings.Contains(string(body), `"maxRetries":3`) {
		t.Fatalf("config: %d %s", status, body)
	}
	// The change reaches the ingest cache at once.
	r := e.send(signedWebhook(id, secret, payload("evt_x", "task.created", `{}`)))
	if r.Status != http.StatusForbidden {
		t.Fatalf("webhook after disabling: %d %s", r.Status, r.Raw)
	}
	if status, _ := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token, map[string]any{"integrationId": e.id("missing"), "enabled": true}); status != 404 {
		t.Fatalf("config for missing integration: %d", status)
	}
}

func TestIntegrationValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		body any
		want string
	}{
		{name: "no organization", body: map[string]any{"webhookSecret": "12345678"}, want: "organizationId is required"},
		{name: "bad scheme", body: map[string]any{"organizationId": "o", "signatureScheme": "md5"}, want: "signatureScheme"},
		{name: "short secret", body: map[string]any{"organizationId": "o", "webhookSecret": "short"}, want: "at least 8"},
		{name: "standard secret not whsec", body: map[string]any{"organizationId": "o", "signatureScheme": "standard-webhooks", "webhookSecret": "whsec_!!!notbase64"}, want: "whsec_"},
		{name: "sync too often", body: map[string]any{"organizationId": "o", "syncFrequency": 1}, want: "syncFrequency must be at least 5"},
		{name: "unknown sync type", body: map[string]any{"organizationId": "o", "syncTypes": []string{"invoices"}}, want: "unknown type"},
		{name: "bad id", body: map[string]any{"organizationId": "o", "id": "has space"}, want: "id must be"},
		{name: "unknown field", body: map[string]any{"organizationId": "o", "colour": "red"}, want: "unknown field"},
		{name: "negative rate", body: map[string]any{"organizationId": "o", "rateLimit": -1}, want: "rateLimit must be positive"},
	}
	for _, tt := range tests {
		status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token, tt.body)
		var resp struct {
			Success bool
			Error   struct{ Code, Message string }
		}
		_ = json.Unmarshal(body, &resp)
		if status != http.StatusBadRequest || resp.Success || resp.Error.Code != "BAD_REQUEST" || !strings.Contains(resp.Error.Message, tt.want) {
			t.Errorf("%s: %d %s, want 400 mentioning %q", tt.name, status, body, tt.want)
		}
	}
}

func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := []byte(e.Cfg.JWTSecret)
	// mintAt mints a token issued at issued: an hour ago with a minute's
	// validity is an expired one (IssueToken refuses a ttl that is not
	// positive).
	mintAt := func(role string, ttl time.Duration, issued time.Time, key []byte) string {
		tok, err := httpapi.IssueToken(key, "u", role, ttl, issued)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mint := func(role string, ttl time.Duration, key []byte) string { return mintAt(role, ttl, time.Now(), key) }
	analyst := mint(httpapi.RoleAnalyst, time.Hour, secret)
	expired := mintAt(httpapi.RoleAdmin, time.Minute, time.Now().Add(-time.Hour), secret)
	forged := mint(httpapi.RoleAdmin, time.Hour, []byte("another-secret"))
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "role": "admin"}).SignedString(secret)
	badRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "role": "root", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	noneAlg := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ."

	create := func() map[string]any { return map[string]any{"organizationId": "o"} }
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		want   int
	}{
		{name: "no token", method: "GET", path: "/api/v1/integrations/softpro", want: 401},
		{name: "expired", method: "GET", path: "/api/v1/integrations/softpro", token: expired, want: 401},
		{name: "wrong signature", method: "GET", path: "/api/v1/integrations/softpro", token: forged, want: 401},
		{name: "no exp claim", method: "GET", path: "/api/v1/integrations/softpro", token: noExp, want: 401},
		{name: "alg none", method: "GET", path: "/api/v1/integrations/softpro", token: noneAlg, want: 401},
		{name: "garbage", method: "GET", path: "/api/v1/integrations/softpro", token: "abc.def", want: 401},
		{name: "unknown role", method: "GET", path: "/api/v1/integrations/softpro", token: badRole, want: 403},
		{name: "analyst reads", method: "GET", path: "/api/v1/integrations/softpro", token: analyst, want: 200},
		{name: "analyst creates", method: "POST", path: "/api/v1/integrations/softpro", token: analyst, body: create(), want: 403},
		{name: "analyst configures", method: "PUT", path: "/api/v1/integrations/softpro/webhooks/config", token: analyst, body: map[string]any{"integrationId": "x"}, want: 403},
		{name: "admin creates", method: "POST", path: "/api/v1/integrations/softpro", token: e.Token, body: create(), want: 201},
	}
	for _, tt := range tests {
		status, body := e.do(tt.method, tt.path, tt.token, tt.body)
		if status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, status, body, tt.want)
		}
		if status >= 400 && !strings.Contains(string(body), `"success":false`) {
			t.Errorf("%s: error body %s", tt.name, body)
		}
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	if r := e.send(signedWebhook(id, secret, payload("evt_m", "document.uploaded", `{}`))); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Raw)
	}
	_ = e.send(signedWebhook(id, "wrong-secret", payload("evt_n", "document.uploaded", `{}`)))

	if status, body := e.do("GET", "/healthz", "", nil); status != 200 || !strings.Contains(string(body), `"up"`) {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if status, body := e.do("GET", "/readyz", "", nil); status != 200 || !strings.Contains(string(body), `"ready":true`) {
		t.Fatalf("readyz: %d %s", status, body)
	}
	status, body := e.do("GET", "/api/webhooks/health", "", nil)
	var health struct {
		Success bool
		Data    struct {
			Status, Service, Timestamp string
			Queues                     []httpapi.QueueStat
		}
	}
	_ = json.Unmarshal(body, &health)
	if status != 200 || !health.Success || health.Data.Status != "healthy" || health.Data.Service == "" || len(health.Data.Queues) != 7 {
		t.Fatalf("health: %d %s", status, body)
	}
	for _, q := range health.Data.Queues {
		if q.QueueName == "softpro.documents.v1" && q.Appended != 1 {
			t.Fatalf("documents queue figures %+v", q)
		}
	}
	_, metrics := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`softprohub_ingest_requests_total{code="ACCEPTED"} 1`,
		`softprohub_ingest_requests_total{code="SIGNATURE_INVALID"} 1`,
		`softprohub_ingest_request_duration_seconds_count 2`,
		`softprohub_ingest_append_duration_seconds_count{topic="softpro.documents.v1"} 1`,
		`softprohub_ingest_dedup_hits_total 0`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(string(metrics), "softprohub_ingest"))
		}
	}

	// Broker gone: not ready, unhealthy.
	e.Broker.Close()
	if status, body := e.do("GET", "/readyz", "", nil); status != 503 || !strings.Contains(string(body), `"name":"kafka","ok":false`) {
		t.Fatalf("readyz without broker: %d %s", status, body)
	}
}

func TestServeRefusesWithoutSecrets(t *testing.T) {
	t.Parallel()
	cfg := app.DefaultConfig()
	_, err := app.New(t.Context(), cfg, app.Options{})
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") || !strings.Contains(err.Error(), "SECRETS_KEY") {
		t.Fatalf("err = %v, want one naming JWT_SECRET and SECRETS_KEY", err)
	}
	cfg.JWTSecret = "x"
	_, err = app.New(t.Context(), cfg, app.Options{})
	if err == nil || strings.Contains(err.Error(), "JWT_SECRET") || !strings.Contains(err.Error(), "SECRETS_KEY") {
		t.Fatalf("err = %v, want one naming only SECRETS_KEY", err)
	}
}

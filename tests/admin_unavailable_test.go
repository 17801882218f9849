package tests

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
)

// wantUnavailable checks an answer is 503 UNAVAILABLE with a Retry-After
// in seconds.
func wantUnavailable(t *testing.T, what string, status int, header http.Header, raw []byte) {
	t.Helper()
	if code, _ := errCode(raw); status != http.StatusServiceUnavailable || code != "UNAVAILABLE" {
		t.Errorf("%s: %d %s, want 503 UNAVAILABLE", what, status, raw)
		return
	}
	if s, err := strconv.Atoi(header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: Retry-After %q, want seconds", what, header.Get("Retry-After"))
	}
}

// TestAPIWithTheDatabaseDownIsUnavailable: with Postgres unreachable, every
// /api/v1 route of the OpenAPI document (management, sync, recovery and
// query alike) answers 503 UNAVAILABLE with Retry-After: "try later", not
// a 500 that reads as a bug.
func TestAPIWithTheDatabaseDownIsUnavailable(t *testing.T) {
	t.Parallel()
	e, p := newEnvBehindDBProxy(t)
	id, _ := e.integration("dbdown", nil)
	bodies := map[string]any{
		"POST /api/v1/integrations/softpro":                      map[string]any{"id": e.id("new"), "organizationId": "org", "webhookSecret": "s3cret-value"},
		"PUT /api/v1/integrations/softpro/webhooks/config":       map[string]any{"integrationId": id, "enabled": false},
		"PATCH /api/v1/integrations/softpro/{id}":                map[string]any{"syncFrequency": 60},
		"POST /api/v1/integrations/softpro/webhooks/retry-batch": map[string]any{"integrationId": id},
		"PUT /api/v1/integrations/softpro/{integrationId}/sync/connection": map[string]any{
			"baseUrl": "http://127.0.0.1:1", "apiKey": "k"},
	}
	p.down()
	doc := openAPISpec(t)
	n := 0
	for _, path := range doc.Paths.InMatchingOrder() {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for method := range doc.Paths.Value(path).Operations() {
			route := method + " " + path
			url := strings.NewReplacer("{integrationId}", id, "{id}", id, "{eventId}", "evt_1").Replace(path)
			if strings.Contains(path, "/transactions/{id}") {
				url = strings.NewReplacer("{integrationId}", id, "{id}", "txn_1").Replace(path)
			}
			resp, raw := e.doResp(method, url, e.Token, bodies[route])
			wantUnavailable(t, route+" with the database down", resp.StatusCode, resp.Header, raw)
			e.checkContract(method, url, resp.StatusCode, raw)
			n++
		}
	}
	if n < 30 {
		t.Errorf("checked %d routes; the document has more", n)
	}
}

// TestSyncWithRedisDownIsUnavailable: the sync routes need Redis (the
// lock, the shared quota); without it they answer 503 UNAVAILABLE with
// Retry-After, and the routes that do not need it still answer.
func TestSyncWithRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *app.Config) { c.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d", port) })
	id, _ := e.syncIntegration("redisdown", nil)
	if status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token,
		map[string]any{"baseUrl": "http://127.0.0.1:1", "apiKey": "k"}); status != http.StatusOK {
		t.Fatalf("connection: %d %s", status, body)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/integrations/softpro/" + id + "/sync"},
		{http.MethodGet, "/api/v1/integrations/softpro/sync/status"},
	} {
		resp, raw := e.doResp(c.method, c.path, e.Token, nil)
		wantUnavailable(t, c.method+" "+c.path+" with Redis down", resp.StatusCode, resp.Header, raw)
		e.checkContract(c.method, c.path, resp.StatusCode, raw)
	}
	if status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/runs", e.Token, nil); status != http.StatusOK {
		t.Errorf("sync runs with Redis down: %d %s", status, body)
	}
}

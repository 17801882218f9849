package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/redis"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/ingest"
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

// TestAdminWithTheDatabaseDownIsUnavailable: with Postgres unreachable, the
// management and sync routes answer 503 UNAVAILABLE with Retry-After, as
// the query API does: "try later", not a 500 that reads as a bug.
func TestAdminWithTheDatabaseDownIsUnavailable(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&connect_timeout=5", port))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cfg := app.DefaultConfig()
	cfg.SecretsKey = "test-key-unavailable"
	box, err := secretbox.NewFromString(cfg.SecretsKey)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := redis.NewClient(redis.ClientConfig{URL: sharedServices(t).redisURL})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	integrations := postgres.NewIntegrationStore(pool, box)
	sys, err := app.NewSyncSystem(cfg, pool, rdb, integrations, noSyncAppender{})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("test-jwt-unavailable")
	h, err := httpapi.NewHandler(httpapi.Config{JWTSecret: secret}, httpapi.Deps{
		Receiver:     noReceiver{},
		Integrations: integrations,
		Mount: []func(chi.Router){httpapi.SyncRoutes(httpapi.SyncDeps{
			Starter: sys.Syncer, Status: sys.Status, Runs: sys.Store, Connections: sys.Store,
			Go: func(fn func(context.Context)) { go fn(ctx) },
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := httpapi.IssueToken(secret, "tester", httpapi.RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/integrations/softpro"
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, base, ""},
		{http.MethodGet, base + "/int_1", ""},
		{http.MethodPost, base, `{"id":"int_1","organizationId":"org_1","webhookSecret":"s3cret-value"}`},
		{http.MethodPut, base + "/webhooks/config", `{"integrationId":"int_1","enabled":false}`},
		{http.MethodGet, base + "/sync/status", ""},
		{http.MethodGet, base + "/int_1/sync/runs", ""},
		{http.MethodGet, base + "/int_1/sync/connection", ""},
		{http.MethodPut, base + "/int_1/sync/connection", `{"baseUrl":"http://127.0.0.1:1","apiKey":"k"}`},
		{http.MethodPost, base + "/int_1/sync", ""},
	} {
		req := httptest.NewRequestWithContext(ctx, c.method, c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+token)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		wantUnavailable(t, c.method+" "+c.path+" with the database down", rec.Code, rec.Header(), rec.Body.Bytes())
		checkContract(t, h, c.method, c.path, rec.Code, rec.Body.Bytes())
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

// noSyncAppender is an appender the requests above never reach.
type noSyncAppender struct{ ingest.Appender }

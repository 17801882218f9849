package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// Collaborators the requests below never reach: calling one panics.
type (
	noReceiver     struct{ httpapi.Receiver }
	noIntegrations struct{ httpapi.IntegrationStore }
	noLog          struct{ projections.LogReader }
	noAppender     struct{ projections.TopicAppender }
)

// TestQueryWithTheDatabaseDownIsUnavailable: with Postgres unreachable,
// every read of the query API and a retry's claim answer 503 UNAVAILABLE
// with Retry-After, as the retry does when the log is unreachable: "try
// later", not a 500.
func TestQueryWithTheDatabaseDownIsUnavailable(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable&connect_timeout=5", port))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewQueryStore(pool)
	secret := []byte("test-jwt-unavailable")
	h, err := httpapi.NewHandler(httpapi.Config{JWTSecret: secret}, httpapi.Deps{
		Receiver:     noReceiver{},
		Integrations: noIntegrations{},
		Mount: []func(chi.Router){httpapi.QueryRoutes(httpapi.QueryDeps{
			Events:       store,
			Entities:     store,
			Stats:        store,
			Retrier:      projections.NewRetrier(store, noLog{}, noAppender{}, nil),
			Integrations: noIntegrations{},
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := httpapi.IssueToken(secret, "tester", httpapi.RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/integrations/softpro/"
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, base + "webhooks/events"},
		{http.MethodGet, base + "webhooks/events?status=RECEIVED"},
		{http.MethodGet, base + "webhooks/events/evt_1"},
		{http.MethodGet, base + "webhooks/stats?period=24h"},
		{http.MethodGet, base + "int_1/transactions"},
		{http.MethodGet, base + "int_1/transactions/txn_1"},
		{http.MethodGet, base + "int_1/transactions/txn_1/status-history"},
		{http.MethodGet, base + "int_1/transactions/txn_1/documents"},
		{http.MethodGet, base + "int_1/contacts"},
		{http.MethodGet, base + "int_1/tasks"},
		{http.MethodPost, base + "webhooks/retry/evt_1"},
	} {
		req := httptest.NewRequestWithContext(ctx, c.method, c.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		raw := rec.Body.Bytes()
		if code, _ := errCode(raw); rec.Code != http.StatusServiceUnavailable || code != "UNAVAILABLE" {
			t.Errorf("%s %s with the database down: %d %s, want 503 UNAVAILABLE", c.method, c.path, rec.Code, raw)
			continue
		}
		if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s %s: Retry-After %q, want seconds", c.method, c.path, rec.Header().Get("Retry-After"))
		}
	}
}

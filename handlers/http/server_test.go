package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAccessLogCountsAbandonedRequestsApart: a request whose client went
// away (its context cancelled) before the handler failed is recorded as
// 499 at info level, not as a server error; a 500 of a client still
// there stays an error.
func TestAccessLogCountsAbandonedRequestsApart(t *testing.T) {
	var logs strings.Builder
	s := &server{metrics: NewMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(&logs, nil))}
	h := s.accessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	serve := func(ctx context.Context) {
		ctx = context.WithValue(ctx, chi.RouteCtxKey, chi.NewRouteContext())
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil).WithContext(ctx))
	}

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	serve(gone)
	if n := testutil.ToFloat64(s.metrics.apiRequests.WithLabelValues("", "499")); n != 1 {
		t.Errorf("abandoned request counted %v times as 499", n)
	}
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), "status=499") {
		t.Errorf("abandoned request logged as %q", logs.String())
	}

	logs.Reset()
	serve(context.Background())
	if n := testutil.ToFloat64(s.metrics.apiRequests.WithLabelValues("", "500")); n != 1 {
		t.Errorf("server error counted %v times as 500", n)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("server error logged as %q", logs.String())
	}
}

// stubReceiver and stubIntegrations satisfy NewHandler's required
// collaborators for tests that never reach them.
type stubReceiver struct{ Receiver }
type stubIntegrations struct{ IntegrationStore }

// TestAccessLogNamesTheCaller: the access log, which runs outside
// authenticate, names the subject and role of the request's token, also
// when the role is refused; a request without a token names no one.
func TestAccessLogNamesTheCaller(t *testing.T) {
	t.Parallel()
	secret := []byte("test-secret")
	var logs strings.Builder
	h, err := NewHandler(Config{JWTSecret: secret}, Deps{
		Receiver: stubReceiver{}, Integrations: stubIntegrations{},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: NewMetrics(prometheus.NewRegistry()),
		Mount: []func(chi.Router){func(r chi.Router) {
			r.With(requireRole(RoleAdmin)).Get("/whoami", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			})
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	admin, err := IssueToken(secret, "alice@example.com", RoleAdmin, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	analyst, err := IssueToken(secret, "bob@example.com", RoleAnalyst, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		status      int
		want        []string
	}{
		{name: "admin", token: admin, status: http.StatusNoContent, want: []string{"sub=alice@example.com", "role=admin"}},
		{name: "refused role", token: analyst, status: http.StatusForbidden, want: []string{"sub=bob@example.com", "role=analyst"}},
		{name: "no token", status: http.StatusUnauthorized, want: []string{`sub="" role=""`}},
	} {
		logs.Reset()
		req := httptest.NewRequest(http.MethodGet, "/api/v1/whoami", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.status)
		}
		line := logs.String()
		if !strings.Contains(line, `msg="api request"`) {
			t.Errorf("%s: no access log line in %q", tc.name, line)
		}
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: access log %q, want it to contain %s", tc.name, line, w)
			}
		}
	}
}

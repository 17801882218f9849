package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

package softpro

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":      time.Second,
		"7200":  2 * time.Hour,
		"0.5":   500 * time.Millisecond,
		"1e30":  maxRetryAfter, // would overflow a Duration
		"+Inf":  maxRetryAfter,
		"NaN":   time.Second,
		"-3":    time.Second,
		"later": time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

// A redirect is followed on the API's own origin only: to another host,
// port or scheme it fails the request, and the API key is not sent there.
func TestRedirectsStayOnTheAPIsOrigin(t *testing.T) {
	t.Parallel()
	var leaked atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("X-API-Key"))
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a/v1/transactions": // moved within the origin
			http.Redirect(w, r, "/b/v1/transactions", http.StatusFound)
		case "/b/v1/transactions":
			_, _ = w.Write([]byte(`{"data":[]}`))
		default: // moved elsewhere
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}))
	defer api.Close()
	c := New(Config{})
	conn := domain.SoftProConnection{IntegrationID: "i", Auth: domain.AuthAPIKey, APIKey: "secret-key"}
	conn.BaseURL = api.URL + "/a"
	if _, err := c.List(t.Context(), conn, ingest.PageRequest{Type: "transactions"}); err != nil {
		t.Fatalf("a redirect within the origin: %v", err)
	}
	conn.BaseURL = api.URL + "/c"
	_, err := c.List(t.Context(), conn, ingest.PageRequest{Type: "transactions"})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a redirect to another origin: %v, want it refused", err)
	}
	if k, _ := leaked.Load().(string); k != "" {
		t.Fatalf("the API key reached the other origin: %q", k)
	}
}

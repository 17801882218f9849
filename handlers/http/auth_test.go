package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IssueToken refuses a ttl that is not positive, whose token the API
// would refuse as expired from the start. A positive one, however short,
// gives a token the API accepts at once and that expires no earlier than
// ttl after its issue (the expiry, kept in whole seconds, is rounded up).
func TestIssueTokenTTL(t *testing.T) {
	secret := []byte("issue-token-ttl-secret-0123456789")
	for _, ttl := range []time.Duration{0, -time.Nanosecond, -time.Hour} {
		if tok, err := IssueToken(secret, "u", RoleAdmin, ttl, time.Now()); err == nil || !strings.Contains(err.Error(), "ttl must be positive") {
			t.Errorf("ttl %s: token %q, error %v; want it refused as not positive", ttl, tok, err)
		}
	}

	accept := authenticate(secret)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, ttl := range []time.Duration{time.Nanosecond, 500 * time.Millisecond, time.Minute} {
		tok, err := IssueToken(secret, "u", RoleAdmin, ttl, time.Now())
		if err != nil {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		accept.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Errorf("ttl %s: the minted token got %d %s, want it accepted", ttl, rec.Code, rec.Body)
		}
	}

	// Late in a second, truncating the expiry would leave nothing of a
	// short ttl.
	issued := time.Date(2030, 1, 2, 3, 4, 5, 999_000_000, time.UTC)
	for _, ttl := range []time.Duration{time.Nanosecond, 500 * time.Millisecond, time.Second, time.Hour} {
		tok, err := IssueToken(secret, "u", RoleAdmin, ttl, issued)
		if err != nil {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
		var c Claims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
		if exp := c.ExpiresAt.Time; exp.Before(issued.Add(ttl)) || !exp.Before(issued.Add(ttl).Add(time.Second)) {
			t.Errorf("ttl %s issued at %s: expires at %s, want the first whole second at or after %s",
				ttl, issued.Format(time.RFC3339Nano), exp.Format(time.RFC3339Nano), issued.Add(ttl).Format(time.RFC3339Nano))
		}
	}
}

package tests

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestBearerTokenForms: the authentication scheme is case-insensitive
// (RFC 9110 §11.1) and may be followed by more than one space (RFC 6750
// §2.1); any other scheme, a missing token, a token in the query string,
// another HMAC size, alg none, a token not yet valid or without expiry get
// 401.
func TestBearerTokenForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := []byte(e.Cfg.JWTSecret)
	sign := func(m jwt.SigningMethod, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(m, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := time.Now().Add(time.Hour).Unix()
	hs384 := sign(jwt.SigningMethodHS384, jwt.MapClaims{"sub": "u", "role": "admin", "exp": exp})
	notYet := sign(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "role": "admin", "exp": exp, "nbf": time.Now().Add(30 * time.Minute).Unix()})
	noExp := sign(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "role": "admin"})
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "role": "admin", "exp": exp}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/integrations/softpro/webhooks/stats"
	for _, tc := range []struct {
		name, header, query string
		want                int
	}{
		{name: "canonical", header: "Bearer " + e.Token, want: 200},
		{name: "lower-case scheme", header: "bearer " + e.Token, want: 200},
		{name: "upper-case scheme", header: "BEARER " + e.Token, want: 200},
		{name: "two spaces", header: "Bearer  " + e.Token, want: 200},
		{name: "other scheme", header: "Token " + e.Token, want: 401},
		{name: "basic", header: "Basic dTpw", want: 401},
		{name: "scheme alone", header: "Bearer", want: 401},
		{name: "scheme and spaces", header: "Bearer   ", want: 401},
		{name: "token without scheme", header: e.Token, want: 401},
		{name: "token in the query", query: "?access_token=" + e.Token, want: 401},
		{name: "HS384", header: "Bearer " + hs384, want: 401},
		{name: "alg none", header: "Bearer " + none, want: 401},
		{name: "not yet valid", header: "Bearer " + notYet, want: 401},
		{name: "no expiry", header: "Bearer " + noExp, want: 401},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.URL+path+tc.query, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, raw, tc.want)
			continue
		}
		e.checkContract(http.MethodGet, path, resp.StatusCode, raw)
		if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
}

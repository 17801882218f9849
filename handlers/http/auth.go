package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles carried in the JWT "role" claim.
const (
	RoleAdmin   = "admin"
	RoleAnalyst = "analyst"
)

// Claims are the JWT claims softprohub issues and accepts.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// IssueToken mints an HS256 token for subject with role, valid from now for
// at least ttl, which must be positive: a token that expires when it is
// minted is refused by every route. The expiry is kept in whole seconds,
// rounded up, so a token is never valid for less than ttl.
func IssueToken(secret []byte, subject, role string, ttl time.Duration, now time.Time) (string, error) {
	if role != RoleAdmin && role != RoleAnalyst {
		return "", fmt.Errorf("issue token: role must be %q or %q", RoleAdmin, RoleAnalyst)
	}
	if len(secret) == 0 {
		return "", errors.New("issue token: empty secret")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue token: ttl must be positive, got %s", ttl)
	}
	exp := now.Add(ttl)
	if t := exp.Truncate(time.Second); !t.Equal(exp) {
		exp = t.Add(time.Second)
	}
	c := Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

type claimsKey struct{}

// ClaimsFromContext returns the verified claims of the request, or the zero
// value on unauthenticated routes.
func ClaimsFromContext(ctx context.Context) Claims {
	c, _ := ctx.Value(claimsKey{}).(Claims)
	return c
}

// callerKey is the context key of the *caller an outer middleware (the
// access log) leaves for authenticate to fill.
type callerKey struct{}

// caller is who made a request, as far as authenticate verified it. The
// access log wraps authenticate, which passes its claims on in a child
// request the log never sees; authenticate writes them here as well.
// The zero value is an unauthenticated request.
type caller struct {
	subject, role string
}

// withCaller returns r carrying an empty caller for authenticate to fill.
func withCaller(r *http.Request) (*http.Request, *caller) {
	c := new(caller)
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c)), c
}

// authenticate verifies the bearer token: 401 when it is missing, malformed,
// expired or wrongly signed. A verified token's subject and role reach
// the caller of an outer withCaller, the refused role included.
func authenticate(secret []byte) func(http.Handler) http.Handler {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired())
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="softprohub"`)
				writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing bearer token")
				return
			}
			var c Claims
			_, err := parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return secret, nil })
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="softprohub", error="invalid_token"`)
				msg := "invalid token"
				if errors.Is(err, jwt.ErrTokenExpired) {
					msg = "token expired"
				}
				writeError(w, http.StatusUnauthorized, codeUnauthorized, msg)
				return
			}
			if who, ok := r.Context().Value(callerKey{}).(*caller); ok {
				who.subject, who.role = c.Subject, c.Role
			}
			if c.Role != RoleAdmin && c.Role != RoleAnalyst {
				writeError(w, http.StatusForbidden, codeForbidden, "unknown role")
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
		})
	}
}

// bearerToken is the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 9110 §11.1) and may be
// followed by several spaces (RFC 6750 §2.1).
func bearerToken(h string) (string, bool) {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok := strings.TrimLeft(rest, " ")
	return tok, tok != ""
}

// requireRole answers 403 unless the authenticated role is one of roles.
func requireRole(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			role := ClaimsFromContext(r.Context()).Role
			for _, want := range roles {
				if role == want {
					next.ServeHTTP(w, r)
					return
				}
			}
			writeError(w, http.StatusForbidden, codeForbidden, fmt.Sprintf("role %q may not do this", role))
		})
	}
}

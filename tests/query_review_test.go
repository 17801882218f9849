package tests

import (
	"net/http"
	"strings"
	"testing"
)

// wantBadParam asserts a 400 BAD_REQUEST whose message names param, as
// documented.
func (e *Env) wantBadParam(path, param string) {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, path, e.Token, nil)
	code, msg := errCode(raw)
	if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, param) {
		e.t.Errorf("GET %s: %d %s, want 400 naming %s", path, status, raw, param)
		return
	}
	e.checkContract(http.MethodGet, path, status, raw)
}

// TestEventsPageBeyondAnyOffset: a page number whose offset does not fit
// in 64 bits is refused like any other page too far, not wrapped around
// into a negative offset.
func TestEventsPageBeyondAnyOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, q := range []string{
		"page=9223372036854775807",
		"page=9223372036854775807&limit=500",
		"page=4611686018427387904&limit=4",
		"page=4294967297&limit=1",
	} {
		e.wantBadParam("/api/v1/integrations/softpro/webhooks/events?"+q, "page")
	}
}

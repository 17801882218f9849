package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReplayWindowEndingBeforeItStarts: a replay whose from is not before
// its to is refused with 400 naming both, like an events list whose
// endDate is before its startDate, not a server error.
func TestReplayWindowEndingBeforeItStarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("a", nil)
	path := "/api/v1/integrations/softpro/" + id + "/replay"
	for _, w := range []struct{ from, to string }{
		{"2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"},
		{"2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"},
		{"2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z"},
	} {
		status, raw := e.do(http.MethodPost, path, e.Token, map[string]any{"from": w.from, "to": w.to})
		code, msg := errCode(raw)
		if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "from") || !strings.Contains(msg, "to") {
			t.Errorf("replay from %s to %s: %d %s, want 400 naming from and to", w.from, w.to, status, raw)
			continue
		}
		e.checkContract(http.MethodPost, path, status, raw)
	}
	// The log is read as it is now: a window from the future is as empty,
	// with a to or without.
	future := time.Now().Add(time.Hour).UTC()
	for _, body := range []map[string]any{
		{"from": future.Format(time.RFC3339)},
		{"from": future.Format(time.RFC3339), "to": future.Add(time.Hour).Format(time.RFC3339)},
	} {
		status, raw := e.do(http.MethodPost, path, e.Token, body)
		if code, msg := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "future") {
			t.Errorf("replay %v: %d %s, want 400 saying it is in the future", body, status, raw)
		}
	}
	// A window the right way round replays.
	rep := e.replay(id, map[string]any{"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:00:01Z"})
	if rep.IntegrationID != id {
		t.Fatalf("replay report %+v", rep)
	}
	if rep := e.replay(id, map[string]any{"from": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}); rep.IntegrationID != id {
		t.Fatalf("replay of the last minute: %+v", rep)
	}
}

// TestRecoveryRoutesOfUnknownIntegration: every recovery route of an
// integration that does not exist answers 404, as the documented contract
// says, rather than an empty report (a replay of nothing, a consistency
// score of 100).
func TestRecoveryRoutesOfUnknownIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := "/api/v1/integrations/softpro/" + e.id("nobody")
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, base + "/replay", nil},
		{http.MethodPost, base + "/replay", map[string]any{"from": "2024-01-01T00:00:00Z"}},
		{http.MethodGet, base + "/consistency", nil},
		{http.MethodGet, base + "/gaps", nil},
		{http.MethodPost, base + "/gaps/fill", nil},
		{http.MethodPost, base + "/resync", nil},
	} {
		status, raw := e.do(c.method, c.path, e.Token, c.body)
		if code, _ := errCode(raw); status != http.StatusNotFound || code != "NOT_FOUND" {
			t.Errorf("%s %s: %d %s, want 404 NOT_FOUND", c.method, c.path, status, raw)
			continue
		}
		e.checkContract(c.method, c.path, status, raw)
	}
}

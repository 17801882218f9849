package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/roisystems/softprohub/domain"
)

// TestIntegrationIDsWithReservedCharacters: an integration id may hold
// ':', which a client may send escaped (%3A) in a path. Every route that
// takes the id in its path finds the integration either way.
func TestIntegrationIDsWithReservedCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("east.1:a", nil)
	esc := strings.ReplaceAll(id, ":", "%3A")

	if r := e.send(signedWebhook(esc, secret, payload("evt_1", domain.TransactionCreated, `{"id":"txn_1","status":"open"}`))); r.Status != http.StatusOK {
		t.Fatalf("webhook to %s: %d %s", esc, r.Status, r.Raw)
	}
	e.waitStatuses(id, map[string]string{"evt_1": "COMPLETED"})

	for _, form := range []string{id, esc} {
		base := "/api/v1/integrations/softpro/" + form
		for _, c := range []struct{ method, path, want string }{
			{http.MethodGet, base, `"id":"` + id + `"`},
			{http.MethodGet, base + "/transactions", `"id":"txn_1"`},
			{http.MethodGet, base + "/sync/runs", `"runs":[]`},
			{http.MethodGet, base + "/gaps", `"integrationId":"` + id + `"`},
			{http.MethodGet, base + "/consistency", `"integrationId":"` + id + `"`},
			// The log holds the one record of this integration.
			{http.MethodPost, base + "/replay", `"records":1,`},
		} {
			status, body := e.do(c.method, c.path, e.Token, nil)
			if status != http.StatusOK || !strings.Contains(string(body), c.want) {
				t.Errorf("%s %s: %d %s, want 200 with %s", c.method, c.path, status, body, c.want)
			}
		}
		if status, body := e.do(http.MethodGet, base+"/sync/connection", e.Token, nil); status != http.StatusNotFound ||
			!strings.Contains(string(body), "NOT_FOUND") {
			t.Errorf("connection of %s before one is set: %d %s, want 404", form, status, body)
		}
	}
}

// TestSyncRunsOfUnknownIntegration: the run history of an integration that
// does not exist is 404, like the integration itself; a known one without
// runs has an empty list (above).
func TestSyncRunsOfUnknownIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+e.id("nobody")+"/sync/runs", e.Token, nil)
	if status != http.StatusNotFound {
		t.Errorf("runs of an unknown integration: %d %s, want 404", status, body)
	}
}

// TestIntegrationIDsThatNameRoutes: an integration id equal to a fixed
// path segment under /api/v1/integrations/softpro/ (projections, …) would
// be routed away from the integration's own routes, so creating one is
// refused with 400 naming every such segment. The segments are read off
// the router, so a route added later is covered too.
func TestIntegrationIDsThatNameRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const prefix = "/api/v1/integrations/softpro/"
	segments := map[string]bool{}
	err := chi.Walk(e.App.Handler().(chi.Routes), func(_, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(route, "/*/", "/")
		if rest, ok := strings.CutPrefix(route, prefix); ok {
			if seg, _, _ := strings.Cut(rest, "/"); seg != "" && !strings.HasPrefix(seg, "{") {
				segments[seg] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !segments["projections"] {
		t.Fatalf("fixed segments read off the router: %v", segments)
	}
	for seg := range segments {
		status, raw := e.call(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{"id": seg, "organizationId": "org"})
		code, msg := errCode(raw)
		if status != http.StatusBadRequest || code != "BAD_REQUEST" {
			t.Errorf("create integration %q: %d %s, want 400", seg, status, raw)
			continue
		}
		for other := range segments {
			if !strings.Contains(msg, other) {
				t.Errorf("create integration %q: message %q does not name %s", seg, msg, other)
			}
		}
	}
	// Ids that only start like one are fine, and read back.
	id := "projections-" + e.ns
	if status, raw := e.call(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{"id": id, "organizationId": "org"}); status != http.StatusCreated {
		t.Fatalf("create integration %q: %d %s", id, status, raw)
	}
	if status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil); status != http.StatusOK || !strings.Contains(string(raw), `"id":"`+id+`"`) {
		t.Fatalf("read back %q: %d %s", id, status, raw)
	}
}

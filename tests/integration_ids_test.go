package tests

import (
	"net/http"
	"strings"
	"testing"

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

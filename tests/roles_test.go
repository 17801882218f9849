package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
)

// A process serves the webhook only with role ingest and the /api/v1
// routes only with role api; health, readiness and metrics it always
// serves, so that a projector or scheduler alone can be probed.
func TestServeRolesChooseTheRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", nil)
	tests := []struct {
		roles         app.Roles
		webhook, api  bool
		eventID, name string
	}{
		{roles: app.Roles{Project: true, Schedule: true}, eventID: "evt_project", name: "project,schedule"},
		{roles: app.Roles{Ingest: true}, webhook: true, eventID: "evt_ingest", name: "ingest"},
		{roles: app.Roles{API: true}, api: true, eventID: "evt_api", name: "api"},
		{roles: app.AllRoles, webhook: true, api: true, eventID: "evt_all", name: "all"},
	}
	for _, tt := range tests {
		e.shutdown()
		e.roles = tt.roles
		e.launch()

		r := e.send(signedWebhook(id, secret, payload(tt.eventID, domain.TaskCreated, `{"id":"k1"}`)))
		if served := !isMissingRoute(r.Status, r.Raw); served != tt.webhook {
			t.Errorf("%s: webhook answered %d %s, want served=%v", tt.name, r.Status, r.Raw, tt.webhook)
		} else if tt.webhook && r.Status != http.StatusOK {
			t.Errorf("%s: webhook answered %d %s, want 200", tt.name, r.Status, r.Raw)
		}
		status, raw := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
		if served := !isMissingRoute(status, raw); served != tt.api {
			t.Errorf("%s: API answered %d %s, want served=%v", tt.name, status, raw, tt.api)
		} else if tt.api && status != http.StatusOK {
			t.Errorf("%s: API answered %d %s, want 200", tt.name, status, raw)
		}
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/webhooks/health", "/api/openapi.json"} {
			if status, raw := e.do(http.MethodGet, path, "", nil); status != http.StatusOK {
				t.Errorf("%s: GET %s answered %d %s", tt.name, path, status, raw)
			}
		}
	}
}

// isMissingRoute tells the router's own 404 from a handler's.
func isMissingRoute(status int, body []byte) bool {
	return status == http.StatusNotFound && strings.Contains(string(body), "no such route")
}

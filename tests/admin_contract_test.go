package tests

import (
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// TestAdminAnswersMatchTheOpenAPIDocument drives the management, sync and
// recovery routes through e.call, so each answer (success and failure) must
// have a documented status and match its schema: integrations, sync
// connection, runs and status, replay, gaps (with a failed run's gap),
// fill (with an error), consistency, resync, projections and a
// point-in-time rebuild.
func TestAdminAnswersMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := "/api/v1/integrations/softpro/"
	id, _ := e.syncIntegration("a", nil)
	s := sim.New(sim.Config{Seed: 42, Records: 2, Tenants: []string{id}})
	srv, refusing := refusingSimulator(t, s)
	ten, _ := s.Tenant(id)

	type step struct {
		method, path string
		body         any
		want         int
	}
	run := func(steps ...step) {
		t.Helper()
		for _, c := range steps {
			if status, raw := e.call(c.method, c.path, e.Token, c.body); status != c.want {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, status, raw, c.want)
			}
		}
	}
	window := map[string]any{"from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "to": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}
	run(
		step{http.MethodPost, base, map[string]any{"id": e.id("b"), "organizationId": "org-" + e.ns, "webhookSecret": "secret-" + randomID(8)}, 201},
		step{http.MethodPost, base, map[string]any{"id": e.id("b"), "organizationId": "org-" + e.ns}, 409},
		step{http.MethodGet, base, nil, 200},
		step{http.MethodGet, base + id, nil, 200},
		step{http.MethodGet, base + e.id("nobody"), nil, 404},
		step{http.MethodPut, base + "webhooks/config", map[string]any{"integrationId": id, "webhookSecret": "rotated-" + randomID(8)}, 200},
		step{http.MethodGet, base + id + "/sync/connection", nil, 404},
		step{http.MethodPut, base + id + "/sync/connection", map[string]any{"baseUrl": srv.URL + "/t/" + id, "auth": "api_key", "apiKey": ten.APIKey}, 200},
		step{http.MethodGet, base + id + "/sync/connection", nil, 200},
		step{http.MethodPost, base + id + "/sync?wait=true", nil, 200},
		step{http.MethodGet, base + "sync/status", nil, 200},
		step{http.MethodGet, base + id + "/sync/runs", nil, 200},
		step{http.MethodPost, base + id + "/replay", window, 200},
		step{http.MethodGet, base + id + "/gaps", nil, 200},
		step{http.MethodPost, base + id + "/gaps/fill", nil, 200},
		step{http.MethodGet, base + id + "/consistency", nil, 200},
		step{http.MethodPost, base + id + "/resync", nil, 200},
		step{http.MethodGet, base + "projections", nil, 200},
	)
	e.matchesSimulator(s, id, 60*time.Second)

	// A failed run: its error in the runs and status, a sync-failed gap,
	// and a fill that reports it.
	refusing.Store(true)
	run(
		step{http.MethodPost, base + id + "/sync?wait=true", nil, 200},
		step{http.MethodGet, base + id + "/sync/runs", nil, 200},
		step{http.MethodGet, base + "sync/status", nil, 200},
		step{http.MethodGet, base + id + "/gaps", nil, 200},
		step{http.MethodPost, base + id + "/gaps/fill", nil, 200},
	)
	refusing.Store(false)

	// A sync started without waiting, then the point-in-time rebuild into
	// a schema of its own.
	copySchema := "copy_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, copySchema) })
	run(
		step{http.MethodPost, base + id + "/sync", nil, 202},
		step{http.MethodPost, base + "projections/rebuild", map[string]any{"asOf": time.Now().UTC().Format(time.RFC3339), "schema": copySchema}, 202},
	)
	eventually(t, 60*time.Second, func() string {
		if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs WHERE state NOT IN ('done', 'failed')`); got != "0" {
			return "rebuild still running"
		}
		return ""
	})
}

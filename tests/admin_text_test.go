package tests

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminTextPostgresCannotHold: on the management, retry, sync and
// recovery routes, an id in the path that Postgres text cannot hold (a NUL
// character, bytes that are not UTF-8) names nothing: 404, as on the query
// routes. Such text in a JSON body answers 400 naming the field. The
// database never sees it, so none of these is a 500.
func TestAdminTextPostgresCannotHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	base := "/api/v1/integrations/softpro/"
	for _, bad := range []string{"%00", "%FF", "a%00b", "%C3%28"} {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, base + bad, nil},
			{http.MethodGet, base + bad + "/sync/runs", nil},
			{http.MethodGet, base + bad + "/sync/connection", nil},
			{http.MethodPut, base + bad + "/sync/connection", map[string]any{"baseUrl": "http://127.0.0.1:1", "apiKey": "key"}},
			{http.MethodPost, base + bad + "/sync", nil},
			{http.MethodPost, base + bad + "/replay", nil},
			{http.MethodGet, base + bad + "/gaps", nil},
			{http.MethodPost, base + bad + "/gaps/fill", nil},
			{http.MethodGet, base + bad + "/consistency", nil},
			{http.MethodPost, base + bad + "/resync", nil},
			{http.MethodPost, base + "webhooks/retry/" + bad, nil},
		} {
			status, raw := e.do(c.method, c.path, e.Token, c.body)
			if code, _ := errCode(raw); status != http.StatusNotFound || code != "NOT_FOUND" {
				t.Errorf("%s %s: %d %s, want 404 NOT_FOUND", c.method, c.path, status, raw)
				continue
			}
			e.checkContract(c.method, c.path, status, raw)
		}
		// The webhook receiver finds no such integration either.
		r := e.send(signedWebhook(bad, "secret-value", payload("evt_1", "transaction.created", `{"id":"txn_1"}`)))
		if r.Status != http.StatusNotFound || r.code() != "INTEGRATION_NOT_FOUND" {
			t.Errorf("webhook to %s: %d %s, want 404 INTEGRATION_NOT_FOUND", bad, r.Status, r.Raw)
		}
	}

	for _, c := range []struct {
		method, path string
		body         map[string]any
		field        string
	}{
		{http.MethodPost, base, map[string]any{"id": e.id("b"), "organizationId": "org\x00"}, "organizationId"},
		{http.MethodPost, base, map[string]any{"id": e.id("c"), "organizationId": "org", "syncTypes": []string{"contacts", "x\x00"}}, "syncTypes[1]"},
		{http.MethodPut, base + "webhooks/config", map[string]any{"integrationId": "a\x00"}, "integrationId"},
		{http.MethodPut, base + "webhooks/config", map[string]any{"integrationId": a, "webhookSecret": "secret-\x00-value"}, "webhookSecret"},
		{http.MethodPost, base + "webhooks/retry-batch", map[string]any{"integrationId": "a\x00"}, "integrationId"},
		{http.MethodPost, base + "webhooks/retry-batch", map[string]any{"integrationId": a, "eventIds": []string{"evt_1", "evt\x00"}}, "eventIds[1]"},
		{http.MethodPut, base + a + "/sync/connection", map[string]any{"baseUrl": "http://127.0.0.1:1", "apiKey": "key", "clientId": "c\x00"}, "clientId"},
		{http.MethodPost, base + a + "/sync", map[string]any{"types": []string{"contacts\x00"}}, "types[0]"},
		{http.MethodPost, base + a + "/replay", map[string]any{"types": []string{"contact.created\x00"}}, "types[0]"},
		{http.MethodPost, base + "projections/rebuild", map[string]any{"asOf": "2024-01-01T00:00:00Z", "schema": "copy\x00"}, "schema"},
	} {
		status, raw := e.do(c.method, c.path, e.Token, c.body)
		code, msg := errCode(raw)
		if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "invalid field "+c.field+":") {
			t.Errorf("%s %s %v: %d %s, want 400 naming %s", c.method, c.path, c.body, status, raw, c.field)
			continue
		}
		e.checkContract(c.method, c.path, status, raw)
	}
	// Nothing was created or started.
	db := e.db()
	if got := queryString(t, db, `SELECT count(*) FROM softpro_integrations WHERE id IN ($1, $2)`, e.id("b"), e.id("c")); got != "0" {
		t.Errorf("integrations created from refused bodies: %s", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Errorf("rebuild runs after a refused body: %s", got)
	}
}

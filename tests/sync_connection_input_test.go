package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/infra/secretbox"
)

// PUT …/sync/connection refuses with 400, changing nothing, what it
// cannot use: a base or token URL that is not http(s) with a host, a field
// it does not take (integrationId and updatedAt, which the GET answer
// shows, included), and "***", how a stored credential is shown, in place
// of a credential.
func TestSyncConnectionRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("badconn", nil)
	other, _ := e.syncIntegration("badconnother", nil)
	path := "/api/v1/integrations/softpro/" + id + "/sync/connection"
	const baseURL = "http://127.0.0.1:9/t/x"
	apiKey := "k-" + randomID(8)
	if status, body := e.call(http.MethodPut, path, e.Token, map[string]any{"baseUrl": baseURL, "apiKey": apiKey}); status != http.StatusOK {
		t.Fatalf("PUT a good connection: %d %s", status, body)
	}
	_, stored := e.call(http.MethodGet, path, e.Token, nil)

	for _, c := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"ftp base URL", map[string]any{"baseUrl": "ftp://x", "apiKey": apiKey}, "baseUrl must be an http or https URL"},
		{"base URL without a host", map[string]any{"baseUrl": "http:///v1", "apiKey": apiKey}, "baseUrl must be an http or https URL"},
		{"base URL without a scheme", map[string]any{"baseUrl": "softpro.example.com", "apiKey": apiKey}, "baseUrl must be an http or https URL"},
		{"ftp token URL", map[string]any{"baseUrl": baseURL, "auth": "oauth", "clientId": "c", "clientSecret": "s", "tokenUrl": "ftp://x"},
			"tokenUrl must be an http or https URL"},
		{"integrationId", map[string]any{"integrationId": other, "baseUrl": baseURL, "apiKey": apiKey}, `unknown field \"integrationId\"`},
		{"updatedAt", map[string]any{"baseUrl": baseURL, "apiKey": apiKey, "updatedAt": "2024-01-01T00:00:00Z"}, `unknown field \"updatedAt\"`},
		{"masked api key", map[string]any{"baseUrl": baseURL, "apiKey": "***"}, `apiKey must be the credential itself`},
		{"masked client secret", map[string]any{"baseUrl": baseURL, "auth": "oauth", "clientId": "c", "clientSecret": "***"},
			`clientSecret must be the credential itself`},
		{"a password in the base URL", map[string]any{"baseUrl": "https://u:p@softpro.example.com", "apiKey": apiKey},
			`baseUrl must not carry a user or password`},
		// The stored key follows the connection only on its own host.
		{"stored key to another host", map[string]any{"baseUrl": "https://elsewhere.example.com/t/x"},
			`apiKey must be given again when baseUrl moves to another host`},
		{"stored key to another port", map[string]any{"baseUrl": "http://127.0.0.1:10/t/x"},
			`apiKey must be given again when baseUrl moves to another host`},
		// Switching mode while moving would keep the stored key for a
		// later switch back on the new host.
		{"stored key kept by a switch to oauth elsewhere", map[string]any{"baseUrl": "https://elsewhere.example.com", "auth": "oauth",
			"clientId": "c", "clientSecret": "s", "tokenUrl": "https://elsewhere.example.com/token"},
			`apiKey must be given again when baseUrl moves to another host`},
	} {
		status, body := e.call(http.MethodPut, path, e.Token, c.body)
		if status != http.StatusBadRequest || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want 400 saying %s", c.name, status, body, c.want)
		}
	}

	// Nothing changed: not the connection, not its key, and the other
	// integration got none.
	if _, now := e.call(http.MethodGet, path, e.Token, nil); string(now) != string(stored) {
		t.Errorf("connection after the refused PUTs: %s, want %s", now, stored)
	}
	var sealed []byte
	if err := e.db().QueryRow(context.Background(), `SELECT api_key_sealed FROM softpro_connections
		WHERE integration_id = $1`, id).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.NewFromString(e.Cfg.SecretsKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := box.Open(sealed); err != nil || string(got) != apiKey {
		t.Errorf("stored API key opens to %q, %v: want the one first set", got, err)
	}
	if status, body := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+other+"/sync/connection", e.Token, nil); status != http.StatusNotFound {
		t.Errorf("GET the other integration's connection: %d %s, want 404", status, body)
	}
	// On its own host the stored key stays when left out (another path is
	// fine), and with a new key the connection may move anywhere.
	for _, body := range []map[string]any{{"baseUrl": "http://127.0.0.1:9/t/y"}, {"baseUrl": "https://elsewhere.example.com", "apiKey": apiKey + "2"}} {
		if status, raw := e.call(http.MethodPut, path, e.Token, body); status != http.StatusOK {
			t.Errorf("PUT %v: %d %s, want 200", body, status, raw)
		}
	}
}

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// simulator starts softprosim's SoftPro API in process for the given
// integration ids.
func simulator(t *testing.T, cfg sim.Config, tenants ...string) (*sim.Sim, *httptest.Server) {
	t.Helper()
	cfg.Tenants = tenants
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	s := sim.New(cfg)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

// connect points an integration at its simulated tenant through the admin
// API, by API key or OAuth client credentials.
func (e *Env) connect(s *sim.Sim, srv *httptest.Server, id string, oauth bool) {
	e.t.Helper()
	ten, ok := s.Tenant(id)
	if !ok {
		e.t.Fatalf("simulator has no tenant %s", id)
	}
	body := map[string]any{"baseUrl": srv.URL + "/t/" + id, "auth": "api_key", "apiKey": ten.APIKey}
	if oauth {
		body = map[string]any{"baseUrl": srv.URL + "/t/" + id, "auth": "oauth", "clientId": ten.ClientID, "clientSecret": ten.ClientSecret}
	}
	status, resp := e.do(http.MethodPut, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token, body)
	if status != http.StatusOK {
		e.t.Fatalf("set connection of %s: %d %s", id, status, resp)
	}
}

// syncIntegration creates an integration syncing every type with a quota
// high enough not to slow a test; scheduled syncs stay off unless fields
// turn them on.
func (e *Env) syncIntegration(name string, fields map[string]any) (id, secret string) {
	e.t.Helper()
	f := map[string]any{"syncTypes": domain.SyncTypes, "syncEnabled": false, "rateLimit": 100000}
	for k, v := range fields {
		f[k] = v
	}
	return e.integration(name, f)
}

// syncNow runs POST …/sync?wait=true and returns the finished run.
func (e *Env) syncNow(id string) ingest.SyncRun {
	e.t.Helper()
	status, body := e.call(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", e.Token, nil)
	if status != http.StatusOK {
		e.t.Fatalf("sync %s: %d %s", id, status, body)
	}
	var resp struct {
		Data struct {
			Run ingest.SyncRun `json:"run"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		e.t.Fatal(err)
	}
	return resp.Data.Run
}

var syncTables = map[string]string{
	domain.SyncTransactions: "transactions", domain.SyncContacts: "contacts",
	domain.SyncDocuments: "documents", domain.SyncTasks: "tasks",
}

// matchesSimulator waits until every read model of the integration holds
// exactly the simulator's records: the same ids, updated_at and payload.
func (e *Env) matchesSimulator(s *sim.Sim, id string, within time.Duration) {
	e.t.Helper()
	db := e.db()
	eventually(e.t, within, func() string {
		for _, typ := range domain.SyncTypes {
			recs := s.Snapshot(id, typ)
			arr := make([]json.RawMessage, len(recs))
			for i, r := range recs {
				arr[i] = r.JSON()
			}
			doc, _ := json.Marshal(arr)
			table := syncTables[typ]
			got := queryString(e.t, db, fmt.Sprintf(`SELECT
				(SELECT count(*) FROM %[1]s WHERE integration_id = $2),
				(SELECT count(*) FROM jsonb_array_elements($1::jsonb) r JOIN %[1]s t
					ON t.integration_id = $2 AND t.id = r->>'id'
					WHERE t.payload = r AND t.softpro_updated_at = (r->>'updated_at')::timestamptz AND NOT t.deleted)`, table), string(doc), id)
			if want := fmt.Sprintf("%d %d", len(recs), len(recs)); got != want {
				return fmt.Sprintf("%s: rows, matching rows = %s, want %s", table, got, want)
			}
		}
		return ""
	})
}

// projectedEvents counts the integration's distinct projected events.
func (e *Env) projectedEvents(id string) string {
	e.t.Helper()
	return queryString(e.t, e.db(), `SELECT count(*) FROM webhook_events WHERE integration_id = $1`, id)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

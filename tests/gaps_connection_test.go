package tests

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// SOFTPRO_API_URL fills the empty base URL of a stored connection; it does
// not connect an integration that has none. Gap detection expects no sync
// of such an integration, so it reports no schedule gap that the fill
// cannot fill; of a connected one it expects syncs from when the
// connection was stored.
func TestGapsExpectNoSyncOfAnIntegrationWithoutAConnection(t *testing.T) {
	t.Parallel()
	const tenant, records = "shared", 2
	s := sim.New(sim.Config{Seed: 42, Records: records, Tenants: []string{tenant}})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	e := newEnv(t, func(c *app.Config) { c.SoftProAPIURL = srv.URL + "/t/" + tenant })
	// Scheduled weekly, never synced.
	weekly := map[string]any{"syncEnabled": true, "syncFrequency": 7 * 24 * 60}
	bare, _ := e.syncIntegration("bare", weekly)
	conn, _ := e.syncIntegration("conn", weekly)
	ten, _ := s.Tenant(tenant)
	if status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/"+conn+"/sync/connection", e.Token,
		map[string]any{"auth": "api_key", "apiKey": ten.APIKey}); status != http.StatusOK {
		t.Fatalf("connection without a base URL: %d %s", status, body)
	}

	kinds := func(gaps []projections.Gap) map[string]bool {
		out := map[string]bool{}
		for _, g := range gaps {
			out[g.Kind] = true
		}
		return out
	}
	if k := kinds(e.gaps(bare)); k[projections.GapSyncMissed] || k[projections.GapSyncFailed] {
		t.Errorf("gaps of an integration without a connection: %v, want no schedule gap", k)
	}
	if rep := e.fill(bare); len(rep.Errors) != 0 || rep.Synced != 0 {
		t.Errorf("fill of an integration without a connection: %+v", rep)
	}
	// Syncs are due from when the connection was stored: one stored just
	// now has missed none; one stored over two weeks ago has.
	if k := kinds(e.gaps(conn)); k[projections.GapSyncMissed] {
		t.Errorf("gaps of an integration connected just now: %v, want no %s", k, projections.GapSyncMissed)
	}
	if _, err := e.db().Exec(context.Background(), `UPDATE softpro_connections SET updated_at = now() - interval '15 days'
WHERE integration_id = $1`, conn); err != nil {
		t.Fatal(err)
	}
	if k := kinds(e.gaps(conn)); !k[projections.GapSyncMissed] {
		t.Errorf("gaps of an integration connected 15 days ago, weekly, never synced: %v, want %s", k, projections.GapSyncMissed)
	}
	// The stored connection syncs from SOFTPRO_API_URL.
	if rep := e.fill(conn); len(rep.Errors) != 0 || rep.Synced != records*len(domain.SyncTypes) {
		t.Errorf("fill of the connected integration: %+v, want %d records synced", rep, records*len(domain.SyncTypes))
	}
}

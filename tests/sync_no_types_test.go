package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// A manual sync of an integration without sync types, asking for none, is
// refused: it would pull nothing and still record a successful sync.
func TestSyncWithoutTypesIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("none", map[string]any{"syncTypes": []string{}})
	s, srv := simulator(t, sim.Config{Records: 2}, id)
	e.connect(s, srv, id, false)
	status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", e.Token, nil)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "no sync types") {
		t.Fatalf("sync without types: %d %s, want 400 naming it", status, body)
	}
	status, body = e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", e.Token, map[string]any{"types": []string{"contacts"}})
	if status != http.StatusOK {
		t.Fatalf("sync of contacts: %d %s", status, body)
	}
	status, body = e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"syncStatus":"IDLE"`) {
		t.Fatalf("integration after the syncs: %d %s", status, body)
	}
}

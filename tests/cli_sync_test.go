package tests

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// sync connect without --base-url stores a connection that syncs from
// SOFTPRO_API_URL, as PUT …/sync/connection does; with neither it is
// refused, naming both.
func TestCLISyncConnectFallsBackToSoftProAPIURL(t *testing.T) {
	t.Parallel()
	const tenant, records = "shared", 3
	s := sim.New(sim.Config{Seed: 42, Records: records, Tenants: []string{tenant}})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	apiURL := srv.URL + "/t/" + tenant
	e := newEnv(t, func(c *app.Config) { c.SoftProAPIURL = apiURL })
	bin := softprohubBinary(t)
	id, _ := e.syncIntegration("cliconnect", nil)
	ten, _ := s.Tenant(tenant)
	connect := func(url string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, "sync", "connect", id, "--api-key", ten.APIKey)
		// The last value of a variable wins.
		cmd.Env = append(cliEnv(e), "REDIS_URL="+e.Cfg.RedisURL, "SOFTPRO_API_URL="+url)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := connect(""); err == nil || !strings.Contains(out, "--base-url") || !strings.Contains(out, "SOFTPRO_API_URL") {
		t.Fatalf("connect with neither --base-url nor SOFTPRO_API_URL: %v\n%s\nwant it refused naming both", err, out)
	}
	if status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token, nil); status != http.StatusNotFound {
		t.Fatalf("connection after the refusal: %d %s, want none", status, body)
	}
	out, err := connect(apiURL)
	if err != nil || !strings.Contains(out, apiURL) {
		t.Fatalf("connect with SOFTPRO_API_URL: %v\n%s", err, out)
	}
	// The connection keeps no base URL of its own and syncs from
	// SOFTPRO_API_URL.
	status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"baseUrl":""`) {
		t.Fatalf("stored connection: %d %s, want one without a base URL", status, body)
	}
	if run := e.syncNow(id); run.Total() != records*len(run.Types) || len(run.Types) == 0 {
		t.Fatalf("sync over the connection: %+v, want %d records of each type", run, records)
	}
}

// sync connect checks the URLs as PUT …/sync/connection does: a base URL
// that is not http(s) with a host is refused, naming the flag's field, and
// nothing is stored.
func TestCLISyncConnectionRefusesNonHTTPURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := softprohubBinary(t)
	id, _ := e.syncIntegration("cliconnectftp", nil)
	cmd := exec.Command(bin, "sync", "connect", id, "--base-url", "ftp://x", "--api-key", "k")
	cmd.Env = append(cliEnv(e), "REDIS_URL="+e.Cfg.RedisURL)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "baseUrl must be an http or https URL") {
		t.Fatalf("connect --base-url ftp://x: %v\n%s\nwant it refused", err, out)
	}
	if status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token, nil); status != http.StatusNotFound {
		t.Fatalf("connection after the refusal: %d %s, want none", status, body)
	}
}

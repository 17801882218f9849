package tests

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// sync connect, like PUT …/sync/connection, keeps the stored credentials
// it is not given: a base URL changes within its origin without resending
// the API key; to another origin, and without credentials stored or given,
// it is refused.
func TestCLISyncConnectKeepsStoredCredentials(t *testing.T) {
	t.Parallel()
	const tenant, records = "shared", 2
	s := sim.New(sim.Config{Seed: 7, Records: records, Tenants: []string{tenant}})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	e := newEnv(t)
	bin := softprohubBinary(t)
	id, _ := e.syncIntegration("clikeep", nil)
	ten, _ := s.Tenant(tenant)
	connect := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"sync", "connect", id}, args...)...)
		cmd.Env = append(cliEnv(e), "REDIS_URL="+e.Cfg.RedisURL)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	other := e.id("nokey")
	if status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{"id": other, "organizationId": "org"}); status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", other, status, body)
	}
	cmd := exec.Command(bin, "sync", "connect", other, "--base-url", srv.URL+"/t/"+tenant)
	cmd.Env = cliEnv(e)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "apiKey is required") {
		t.Fatalf("connect without credentials stored or given: %v\n%s\nwant it refused naming apiKey", err, out)
	}

	if out, err := connect("--base-url", srv.URL+"/nowhere", "--api-key", ten.APIKey); err != nil {
		t.Fatalf("first connect: %v\n%s", err, out)
	}
	// A new base URL on the same origin alone: the stored API key stays
	// and serves the sync. On another origin it must be given again.
	if out, err := connect("--base-url", "http://127.0.0.1:1/elsewhere"); err == nil || !strings.Contains(out, "apiKey must be given again") {
		t.Fatalf("connect to another origin without --api-key: %v\n%s\nwant it refused naming apiKey", err, out)
	}
	if out, err := connect("--base-url", srv.URL+"/t/"+tenant); err != nil {
		t.Fatalf("connect with a new base URL and no --api-key: %v\n%s\nwant the stored key kept", err, out)
	}
	status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"apiKey":"***"`) || !strings.Contains(string(body), srv.URL) {
		t.Fatalf("stored connection: %d %s, want the new base URL and a key", status, body)
	}
	if run := e.syncNow(id); run.Total() != records*len(run.Types) || len(run.Types) == 0 {
		t.Fatalf("sync over the kept key: %+v, want %d records of each type", run, records)
	}
}

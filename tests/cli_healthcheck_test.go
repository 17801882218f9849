package tests

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// softprohub healthcheck exits 0 when the local /readyz answers 200, and
// non-zero when it answers anything else or nothing listens.
func TestCLIHealthcheckFollowsReadyz(t *testing.T) {
	t.Parallel()
	bin := softprohubBinary(t)
	var status atomic.Int64
	var paths atomic.Value
	paths.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	run := func(addr string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "healthcheck")
		cmd.Env = append(os.Environ(), "HTTP_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &exit):
			return exit.ExitCode(), string(out)
		default:
			t.Fatalf("softprohub healthcheck: %v", err)
			return -1, ""
		}
	}

	// A wildcard HTTP_ADDR probes the local address.
	for _, addr := range []string{"127.0.0.1:" + port, ":" + port, "0.0.0.0:" + port} {
		status.Store(http.StatusOK)
		if code, out := run(addr); code != 0 {
			t.Errorf("HTTP_ADDR=%s, /readyz 200: exit %d, want 0\n%s", addr, code, out)
		}
		if p := paths.Load().(string); p != "/readyz" {
			t.Errorf("HTTP_ADDR=%s: probed %q, want /readyz", addr, p)
		}
		status.Store(http.StatusServiceUnavailable)
		if code, out := run(addr); code == 0 || !strings.Contains(out, "503") {
			t.Errorf("HTTP_ADDR=%s, /readyz 503: exit %d, want non-zero naming 503\n%s", addr, code, out)
		}
	}
	srv.Close()
	if code, out := run("127.0.0.1:" + port); code == 0 {
		t.Errorf("nothing listening: exit 0, want non-zero\n%s", out)
	}
}

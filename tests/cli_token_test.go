package tests

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// token refuses a --ttl that is not positive, whose token every route
// would refuse as expired: exit 1, nothing printed on stdout, and
// stderr naming the flag.
func TestCLITokenRefusesTTLNotPositive(t *testing.T) {
	t.Parallel()
	bin := softprohubBinary(t)
	env := append(os.Environ(), "JWT_SECRET=cli-token-ttl-secret-0123456789", "DATA_DIR="+t.TempDir())
	for _, ttl := range []string{"0", "0s", "-1h", "-1ns"} {
		cmd := exec.Command(bin, "token", "--role", "admin", "--ttl", ttl)
		cmd.Env = env
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || stdout.String() != "" ||
			!strings.HasPrefix(stderr.String(), "softprohub: --ttl must be positive") {
			t.Errorf("token --ttl %s: %v\nstdout: %s\nstderr: %s\nwant exit 1 saying --ttl must be positive, and no token", ttl, err, stdout.String(), stderr.String())
		}
	}
	cmd := exec.Command(bin, "token", "--role", "admin", "--ttl", "1ns")
	cmd.Env = env
	if out, err := cmd.Output(); err != nil || strings.Count(string(out), ".") != 2 {
		t.Errorf("token --ttl 1ns: %v %q, want a token", err, out)
	}
}

package tests

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Without SECRETS_KEY the recovery commands cannot sync: gaps names the
// sides it did not check and why, and resync says what it needs.
func TestCLIRecoveryWithoutSecretsKeySaysWhatItLeftOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := softprohubBinary(t)
	id, _ := e.syncIntegration("nokey", nil)
	// The last value of a variable wins.
	withKey := append(cliEnv(e), "REDIS_URL="+e.Cfg.RedisURL)
	noKey := append(cliEnv(e), "SECRETS_KEY=")
	run := func(env []string, args ...string) (stdout, stderr string, err error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var o, se strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &se
		err = cmd.Run()
		return o.String(), se.String(), err
	}
	notChecked := func(out string) []string {
		t.Helper()
		var rep struct {
			NotChecked []string `json:"notChecked"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return rep.NotChecked
	}

	for _, args := range [][]string{{"gaps", id}, {"gaps", "fill", id}} {
		out, stderr, err := run(noKey, args...)
		if err != nil {
			t.Fatalf("softprohub %v: %v\n%s", args, err, stderr)
		}
		if nc := notChecked(out); !slices.Equal(nc, []string{"sync", "data"}) {
			t.Errorf("softprohub %v without SECRETS_KEY: notChecked %v, want [sync data]\n%s", args, nc, out)
		}
		if !strings.Contains(stderr, "sync and data sides were not checked") || !strings.Contains(stderr, "SECRETS_KEY") {
			t.Errorf("softprohub %v without SECRETS_KEY: stderr %q, want the sides and the key named", args, stderr)
		}
	}
	out, stderr, err := run(noKey, "resync", id)
	if err == nil || !strings.Contains(stderr, "SECRETS_KEY") {
		t.Errorf("resync without SECRETS_KEY: %v\n%s\n%s\nwant an error naming SECRETS_KEY", err, out, stderr)
	}

	out, stderr, err = run(withKey, "gaps", id)
	if err != nil {
		t.Fatalf("gaps with SECRETS_KEY: %v\n%s", err, stderr)
	}
	if nc := notChecked(out); nc != nil || strings.Contains(stderr, "not checked") {
		t.Errorf("gaps with SECRETS_KEY: notChecked %v, stderr %q, want every side checked", nc, stderr)
	}
}

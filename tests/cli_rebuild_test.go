package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// The flags of a point-in-time copy without --as-of are refused: the
// command was meant for a copy and must never rebuild and swap the live
// read models.
func TestCLIRebuildRefusesACopysFlagsWithoutAsOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := softprohubBinary(t)
	env := cliEnv(e)
	for _, args := range [][]string{{"rebuild", "--schema", "my_copy"}, {"rebuild", "--replace"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "need --as-of") {
			t.Errorf("softprohub %v: %v\n%s\nwant it refused for want of --as-of", args, err, out)
		}
	}
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("%s rebuild runs recorded, want none", got)
	}
}

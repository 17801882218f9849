package tests

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// The flags of a point-in-time copy without --as-of are refused, even
// given empty or false: the command was meant for a copy and must never
// rebuild and swap the live read models. So are a batch or a number of
// workers that is not positive (0 ran with the defaults).
func TestCLIRebuildRefusesACopysFlagsWithoutAsOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := softprohubBinary(t)
	env := cliEnv(e)
	const noAsOf, notPositive = "need --as-of", "must be positive"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rebuild", "--schema", "my_copy"}, noAsOf},
		{[]string{"rebuild", "--replace"}, noAsOf},
		// Given empty or false (a script's unset variable): still a copy's.
		{[]string{"rebuild", "--as-of", ""}, noAsOf},
		{[]string{"rebuild", "--schema", ""}, noAsOf},
		{[]string{"rebuild", "--replace=false"}, noAsOf},
		{[]string{"rebuild", "--as-of", "", "--schema", "my_copy"}, noAsOf},
		{[]string{"rebuild", "--batch", "0"}, notPositive},
		{[]string{"rebuild", "--workers", "0"}, notPositive},
		{[]string{"rebuild", "--batch", "-1"}, notPositive},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("softprohub %v: %v\n%s\nwant it refused saying %q", c.args, err, out, c.want)
		}
	}
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("%s rebuild runs recorded, want none", got)
	}
}

// TestCLIRebuildRefusedWhileAnotherRuns: a rebuild from the command line
// while another process holds the rebuild lock fails at once saying so,
// prints no report and leaves no run of its own; once the other is done,
// the same command rebuilds.
func TestCLIRebuildRefusedWhileAnotherRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	runs := postgres.NewRebuildRuns(e.db())
	_, _, release, err := runs.Begin(context.Background(), projections.RebuildRun{
		Kind: projections.KindRebuild, Schema: "other_process", State: projections.StateBuilding, StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	e.cliRefused(projections.ErrRebuildRunning.Error(), "rebuild")
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "1" {
		t.Fatalf("%s rebuild runs recorded, want the other process's alone", got)
	}
	release()
	if out, stderr, err := e.cli("rebuild"); err != nil || !strings.Contains(out, `"state": "done"`) {
		t.Fatalf("rebuild once the other released the lock: %v\n%s%s", err, out, stderr)
	}
}

package tests

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// rebuild builds the read models from the log into a new schema and swaps
// it in, in its own process while serve runs: the tables are new, their
// rows the same, and projections shows the run, as GET /projections does.
func TestCLIRebuildSwapsInTheSameRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, n := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	oids := func() string {
		return queryString(t, db, `SELECT 'transactions'::regclass::oid, 'webhook_events'::regclass::oid`)
	}
	before := oids()

	out, stderr, err := e.cli("rebuild", "--batch", "3", "--workers", "2")
	if err != nil {
		t.Fatalf("rebuild: %v\n%s%s", err, out, stderr)
	}
	var run projections.RebuildRun
	if err := json.Unmarshal([]byte(out), &run); err != nil || run.ID == 0 || run.Kind != projections.KindRebuild ||
		run.State != projections.StateDone || run.Progress.Applied < int64(n) {
		t.Fatalf("rebuild printed %v:\n%s", err, out)
	}
	// Progress goes to the terminal, one line rewritten, ending with the
	// finished run's.
	progress := strings.Fields(stderr[strings.LastIndex(stderr, "\r")+1:])
	if len(progress) < 9 || progress[0] != "done" || progress[1] != fmt.Sprint(run.Progress.Applied) ||
		!strings.Contains(stderr, "events/s") || !strings.Contains(stderr, "offsets left  ETA") {
		t.Fatalf("rebuild progress on stderr: %q", stderr)
	}
	if oids() == before {
		t.Fatal("the read-model tables are the same after the rebuild: nothing was swapped in")
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after the rebuild:\n got %s\nwant %s", got, want)
	}
	if got := queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1`, "test_"+e.ns+"_rebuild%"); got != "0" {
		t.Fatalf("%s rebuild schemas left", got)
	}
	// The live projectors carry on from the handed-over checkpoints.
	if r := e.send(signedWebhook(id, secret, event("after_swap", domain.TaskCreated, time.Now(), `{"id":"tsk_after","title":"A"}`))); r.Status != 200 {
		t.Fatalf("after the swap: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, n+1)

	st := cliJSON[projections.StatusReport](e, "projections")
	if st.Rebuild == nil || st.Rebuild.ID != run.ID || st.Rebuild.State != projections.StateDone {
		t.Fatalf("projections after the rebuild: last rebuild %+v, want run %d done", st.Rebuild, run.ID)
	}
	names := map[string]bool{}
	for _, p := range st.Projections {
		names[p.Name] = true
		if p.State != projections.ProjectionLive || p.Lag != 0 || len(p.Partitions) != 3 {
			t.Errorf("projection %s: state %s, lag %d, %d partitions", p.Name, p.State, p.Lag, len(p.Partitions))
		}
		for _, part := range p.Partitions {
			stored := queryString(t, db, `SELECT coalesce(max(next_offset), -1) FROM projection_checkpoints WHERE topic = $1 AND "partition" = $2`, p.Topic, part.Partition)
			if fmt.Sprint(part.Checkpoint) != stored || part.End < part.Checkpoint {
				t.Errorf("projection %s partition %d: checkpoint %d, end %d; stored checkpoint %s", p.Name, part.Partition, part.Checkpoint, part.End, stored)
			}
		}
	}
	if len(names) != len(domain.AllTopics) || !names["transactions"] || !names["tasks"] {
		t.Fatalf("projections listed %v, want one for each of %v", names, domain.AllTopics)
	}
	if api := e.projectionsStatus(); !reflect.DeepEqual(st, api) {
		t.Fatalf("projections: the CLI reports\n%+v\nthe API\n%+v", st, api)
	}

	e.cliRefused(`unknown projection "everything"`, "rebuild", "--projection", "everything")
}

// rebuild --as-of T --schema NAME builds the read models as they were at T
// into NAME and leaves the live ones alone; a time, a schema or a flag it
// cannot use is refused before anything is built, as the route refuses it.
func TestCLIRebuildAsOfBuildsThePastIntoItsSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, n := fixtureIntegration(t, e, db, "evt")
	want := dumpWithoutMetrics(readModelDump(t, db, id))
	time.Sleep(20 * time.Millisecond)
	at := time.Now().UTC().Truncate(time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if r := e.send(signedWebhook(id, secret, event("late_0", domain.TransactionUpdated, time.Now(), `{"id":"txn_1","status":"closed"}`))); r.Status != 200 {
		t.Fatalf("update after T: %d %s", r.Status, r.Raw)
	}
	if r := e.send(signedWebhook(id, secret, event("late_1", domain.TaskCreated, time.Now(), `{"id":"tsk_9","title":"after"}`))); r.Status != 200 {
		t.Fatalf("create after T: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, n+2)
	liveNow := readModelDump(t, db, id)

	schema := "cli_asof_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, schema) })
	for _, replace := range []bool{false, true} {
		args := []string{"rebuild", "--as-of", at.Format(time.RFC3339Nano), "--schema", schema}
		if replace {
			args = append(args, "--replace")
		}
		run := cliJSON[projections.RebuildRun](e, args...)
		if run.ID == 0 || run.Kind != projections.KindAsOf || run.State != projections.StateDone || run.Schema != schema ||
			run.AsOf == nil || !run.AsOf.Equal(at) {
			t.Fatalf("softprohub %v printed %+v", args, run)
		}
		copied := e.dbAt(withSchema(t, sharedServices(t).databaseURL, schema))
		if got := dumpOf(t, copied, id, false); got != want {
			t.Fatalf("state as of T after softprohub %v:\n got %s\nwant %s", args, got, want)
		}
		if got := readModelDump(t, db, id); got != liveNow {
			t.Fatalf("softprohub %v changed the live read models:\n got %s\nwant %s", args, got, liveNow)
		}
	}

	other := "cli_other_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, other) })
	e.cliRefused("exists", "rebuild", "--as-of", "1m", "--schema", schema)
	e.cliRefused("--as-of", "rebuild", "--as-of", "last week", "--schema", other)
	e.cliRefused("--schema", "rebuild", "--as-of", "1m")
	e.cliRefused("lower-case letters", "rebuild", "--as-of", "1m", "--schema", "Copy")
	e.cliRefused("live schema", "rebuild", "--as-of", "1m", "--schema", "test_"+e.ns)
	e.cliRefused("0001-01-01", "rebuild", "--as-of", "0001-01-01T00:00:00Z", "--schema", other)
	e.cliRefused("future", "rebuild", "--as-of", "2999-01-01T00:00:00Z", "--schema", other)
	e.cliRefused("future", "rebuild", "--as-of=-1h", "--schema", other)
	if got := queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, other); got != "0" {
		t.Fatalf("a refused build left its schema")
	}
}

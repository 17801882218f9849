package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

func (e *Env) projectionsStatus() projections.StatusReport {
	e.t.Helper()
	return adminData[projections.StatusReport](e, http.MethodGet, "/api/v1/integrations/softpro/projections", nil)
}

// startRebuild asks for a rebuild (or an as-of build) and waits until the
// status reports it done.
func (e *Env) rebuildAndWait(body map[string]any, within time.Duration) projections.RebuildRun {
	e.t.Helper()
	db := e.db()
	before := queryString(e.t, db, `SELECT coalesce(max(id), 0) FROM rebuild_runs`)
	status, raw := e.do(http.MethodPost, "/api/v1/integrations/softpro/projections/rebuild", e.Token, body)
	if status != http.StatusAccepted {
		e.t.Fatalf("rebuild: %d %s", status, raw)
	}
	var run projections.RebuildRun
	eventually(e.t, within, func() string {
		got := queryString(e.t, db, `SELECT id, state, coalesce(error, '') FROM rebuild_runs WHERE id > $1 ORDER BY id DESC LIMIT 1`, mustInt(before))
		if got == "" {
			return "no run yet"
		}
		var id int64
		var state string
		fmt.Sscan(got, &id, &state)
		switch projections.RebuildState(state) {
		case projections.StateDone:
			run.ID, run.State = id, projections.StateDone
			return ""
		case projections.StateFailed, projections.StateCancelled:
			e.t.Fatalf("rebuild run: %s", got)
		}
		return "run: " + got
	})
	return run
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func TestReplayRebuildWhileIngestRunsLosesNothingAndNeverShrinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, n := fixtureIntegration(t, e, db, "pre")
	// Enough history that the rebuild takes a while.
	for i := range 300 {
		w := signedWebhook(id, secret, event(fmt.Sprintf("bulk_%04d", i), domain.ContactCreated, time.Now(), fmt.Sprintf(`{"id":"con_b%d","first_name":"B"}`, i)))
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("bulk %d: %d %s", i, r.Status, r.Raw)
		}
	}
	n += 300
	waitAudit(t, db, id, n)

	// Steady ingest during the rebuild.
	ctx, stop := context.WithCancel(context.Background())
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			w := signedWebhook(id, secret, event(fmt.Sprintf("live_%05d", i), domain.TaskCreated, time.Now(), fmt.Sprintf(`{"id":"tsk_l%d","title":"L"}`, i)))
			if r := e.send(w); r.Status != 200 {
				t.Errorf("live %d: %d %s", i, r.Status, r.Raw)
				return
			}
			sent.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	// A reader that must never see fewer rows than it saw before.
	var shrank atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		var lastAudit, lastTasks, lastContacts int64
		for ctx.Err() == nil {
			var audit, tasks, contacts int64
			err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_events WHERE integration_id=$1),
 (SELECT count(*) FROM tasks WHERE integration_id=$1), (SELECT count(*) FROM contacts WHERE integration_id=$1)`, id).Scan(&audit, &tasks, &contacts)
			if err != nil {
				if ctx.Err() == nil {
					shrank.Store("query: " + err.Error())
				}
				return
			}
			if audit < lastAudit || tasks < lastTasks || contacts < lastContacts {
				shrank.Store(fmt.Sprintf("rows went from %d/%d/%d to %d/%d/%d", lastAudit, lastTasks, lastContacts, audit, tasks, contacts))
			}
			lastAudit, lastTasks, lastContacts = audit, tasks, contacts
			time.Sleep(2 * time.Millisecond)
		}
	}()
	oid := func() string {
		return queryString(t, db, `SELECT 'webhook_events'::regclass::oid, 'transactions'::regclass::oid`)
	}
	before := oid()
	time.Sleep(200 * time.Millisecond)
	e.rebuildAndWait(nil, 90*time.Second)
	if after := oid(); after == before {
		t.Fatalf("the read-model tables were not swapped: %s", after)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	if msg, ok := shrank.Load().(string); ok {
		t.Fatalf("a reader saw the read models shrink: %s", msg)
	}
	live := int(sent.Load())
	if live < 20 {
		t.Fatalf("only %d webhooks were sent during the rebuild", live)
	}
	waitAudit(t, db, id, n+live)
	if got := queryString(t, db, `SELECT count(*) FROM tasks WHERE integration_id=$1 AND id LIKE 'tsk_l%'`, id); got != strconv.Itoa(live) {
		t.Fatalf("tasks sent during the rebuild: %s projected of %d", got, live)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("after rebuild: score %d, issues %+v", rep.Score, rep.Issues)
	}
	st := e.projectionsStatus()
	if st.Rebuild == nil || st.Rebuild.State != projections.StateDone || st.Rebuild.Progress.Applied < int64(n) {
		t.Fatalf("status rebuild: %+v", st.Rebuild)
	}
	for _, p := range st.Projections {
		if p.State != projections.ProjectionLive {
			t.Errorf("projection %s state %s", p.Name, p.State)
		}
		if p.Lag != 0 {
			t.Errorf("projection %s lag %d after catching up", p.Name, p.Lag)
		}
	}
	// The swapped-in tables come with their planner statistics.
	for _, col := range []string{"webhook_events.status", "webhook_events.received_at", "contacts.integration_id", "tasks.softpro_updated_at"} {
		table, column, _ := strings.Cut(col, ".")
		if got := queryString(t, db, `SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = $1 AND attname = $2`, table, column); got != "1" {
			t.Errorf("no statistics for %s after the swap", col)
		}
	}
	if got := queryString(t, db, `SELECT reltuples >= $1 FROM pg_class WHERE oid = 'webhook_events'::regclass`, n); got != "true" {
		t.Errorf("webhook_events' row estimate after the swap is below %d", n)
	}
	// Nothing is left of the rebuild's schemas, and sync tables survived.
	if got := queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1`, "test_"+e.ns+"_rebuild%"); got != "0" {
		t.Fatalf("%s rebuild schemas left", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM softpro_integrations WHERE id=$1`, id); got != "1" {
		t.Fatalf("integration rows after swap: %s", got)
	}
	// The all-integration totals follow the hourly rows after the swap too:
	// their trigger must not have gone with the rebuild schema.
	w := signedWebhook(id, secret, event("after_swap", domain.TaskCreated, time.Now(), `{"id":"tsk_after","title":"A"}`))
	if r := e.send(w); r.Status != 200 {
		t.Fatalf("after swap: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, n+live+1)
	assertTotalsMatch(t, db)
}

func TestReplayAsOfBuildMatchesTheStateAtThatTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, n := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	time.Sleep(20 * time.Millisecond)
	at := time.Now().UTC().Truncate(time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	// After T: an update, a delete and a new entity.
	later := []struct {
		typ  domain.EventType
		data string
	}{
		{domain.TransactionUpdated, `{"id":"txn_1","status":"closed"}`},
		{domain.ContactDeleted, `{"id":"con_1"}`},
		{domain.TaskCreated, `{"id":"tsk_9","title":"after"}`},
	}
	for i, s := range later {
		if r := e.send(signedWebhook(id, secret, event(fmt.Sprintf("late_%d", i), s.typ, time.Now(), s.data))); r.Status != 200 {
			t.Fatalf("%s: %d %s", s.typ, r.Status, r.Raw)
		}
	}
	waitAudit(t, db, id, n+len(later))
	liveNow := readModelDump(t, db, id)

	schema := "test_" + e.ns + "_asof"
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, schema) })
	e.rebuildAndWait(map[string]any{"asOf": at.Format(time.RFC3339Nano), "schema": schema}, 60*time.Second)
	asOf := e.dbAt(withSchema(t, sharedServices(t).databaseURL, schema))
	if got := dumpOf(t, asOf, id, false); got != dumpWithoutMetrics(want) {
		t.Fatalf("as-of state:\n got %s\nwant %s", got, dumpWithoutMetrics(want))
	}
	if got := readModelDump(t, db, id); got != liveNow {
		t.Fatalf("the as-of build changed the live read models:\n got %s\nwant %s", got, liveNow)
	}
}

// dumpWithoutMetrics drops the metrics line of a readModelDump: processing
// times of a build differ from the live ones.
func dumpWithoutMetrics(d string) string {
	lines := 0
	for i := range d {
		if d[i] == '\n' {
			lines++
			if lines == 6 {
				return d[:i+1]
			}
		}
	}
	return d
}

// failingSwap fails the swap after the live projectors were paused and the
// rebuilt schema is complete: the moment a crash hurts most.
type failingTarget struct {
	*postgres.RebuildTarget
}

func (f failingTarget) Pause(ctx context.Context) (projections.Swap, error) {
	s, err := f.RebuildTarget.Pause(ctx)
	if err != nil {
		return nil, err
	}
	return failingSwap{s}, nil
}

type failingSwap struct{ projections.Swap }

// recoveryTools returns the recovery tools of e's database and log, as the
// CLI builds them, with a producer of their own closed with the test.
func (e *Env) recoveryTools() *app.RecoveryTools {
	e.t.Helper()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(producer.Close)
	tools, err := app.NewRecoveryTools(e.t.Context(), e.App.Pool(), e.Brokers, producer, app.RecoveryOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return tools
}

func (f failingSwap) Commit(ctx context.Context, schema, retired string, names []string) error {
	return errors.New("injected crash at the swap")
}

func TestReplayRebuildThatFailsLeavesLiveUntouchedAndCanRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	ctx := t.Context()
	tools := e.recoveryTools()
	rb, err := projections.NewRebuilder(projections.RebuildConfig{LiveSchema: tools.Target.LiveSchema(), Names: app.ProjectionNames()},
		failingTarget{tools.Target}, tools.Runs, tools.Log)
	if err != nil {
		t.Fatal(err)
	}
	run, err := rb.Rebuild(ctx)
	if err == nil || run.State != projections.StateFailed {
		t.Fatalf("rebuild with a failing swap: %+v, %v", run, err)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("live read models changed by a failed rebuild:\n got %s\nwant %s", got, want)
	}
	// Live keeps projecting after the failed swap.
	if r := e.send(signedWebhook(id, secret, event("after_fail", domain.TaskCreated, time.Now(), `{"id":"tsk_af","title":"x"}`))); r.Status != 200 {
		t.Fatalf("send: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 12)

	// A crash mid-build: the process dies with its run active. The next
	// rebuild marks it failed, drops its schema and succeeds.
	var crashed int64
	if err := e.App.Pool().QueryRow(ctx, `INSERT INTO rebuild_runs (kind, schema_name, state, started_at) VALUES ('rebuild', $1, 'building', now()) RETURNING id`,
		tools.Target.LiveSchema()+"_rebuild_crashed").Scan(&crashed); err != nil {
		t.Fatal(err)
	}
	if _, err := e.App.Pool().Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{tools.Target.LiveSchema() + "_rebuild_crashed"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	want = readModelDump(t, db, id)
	if status := e.projectionsStatus(); status.Projections[0].State != projections.ProjectionRebuilding {
		t.Fatalf("state with an active run: %s", status.Projections[0].State)
	}
	run, err = tools.Rebuilder.Rebuild(ctx)
	if err != nil {
		t.Fatalf("rebuild after a crash: %v", err)
	}
	if got := queryString(t, db, `SELECT state, error FROM rebuild_runs WHERE id=$1`, crashed); got != "failed interrupted" {
		t.Fatalf("crashed run: %s", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1`, tools.Target.LiveSchema()+"_rebuild%"); got != "0" {
		t.Fatalf("%s rebuild schemas left", got)
	}
	if got := dumpOf(t, db, id, false); got != dumpWithoutMetrics(want) {
		t.Fatalf("rebuilt read models:\n got %s\nwant %s", got, dumpWithoutMetrics(want))
	}
	if run.Progress.Applied < 12 {
		t.Fatalf("rebuild applied %d records", run.Progress.Applied)
	}
}

// A rebuild in one-record transactions must find in the rebuilt schema what
// earlier transactions wrote there: entity states to fold into, and the
// audit row of an event appended twice (its second copy is a duplicate,
// counted once). Rebuilds skip the lookups of keys they have never written;
// this is the test that they never skip one they have.
func TestReplayRebuildInSmallBatchesFindsWhatEarlierBatchesWrote(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	n := fixture(t, e, db, id, secret, "evt", t0)
	ctx := t.Context()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// evt_05 (con_1's update) again, as a retry past the dedup window
	// would append it.
	again := domain.Envelope{Schema: domain.SchemaV1, EventID: "evt_05", IntegrationID: id, Type: domain.ContactUpdated,
		OccurredAt: t0.Add(5 * time.Second), ReceivedAt: time.Now().UTC(), Source: domain.SourceWebhook,
		Priority: domain.ContactUpdated.Priority(), Payload: event("evt_05", domain.ContactUpdated, t0.Add(5*time.Second), `{"id":"con_1","email":"ada@lovelace.example"}`)}
	appendAgain(t, db, producer, again)
	want := readModelDump(t, db, id)
	if got := queryString(t, db, `SELECT sum(received)::bigint FROM integration_metrics_hourly WHERE integration_id = $1`, id); got != fmt.Sprint(n) {
		t.Fatalf("live received %s events, want %d", got, n)
	}

	tools, err := app.NewRecoveryTools(ctx, e.App.Pool(), e.Brokers, producer, app.RecoveryOptions{BatchSize: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	run, err := tools.Rebuilder.Rebuild(ctx)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if run.Progress.Applied != int64(n+1) {
		t.Fatalf("rebuild applied %d records, want %d", run.Progress.Applied, n+1)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("rebuilt read models:\n got %s\nwant %s", got, want)
	}
}

package tests

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/projections"
)

// entityRows counts the integration's rows in the four entity tables.
func entityRows(t *testing.T, db *pgxpool.Pool, id string) string {
	t.Helper()
	return queryString(t, db, `SELECT (SELECT count(*) FROM transactions WHERE integration_id=$1) + (SELECT count(*) FROM contacts WHERE integration_id=$1)
 + (SELECT count(*) FROM documents WHERE integration_id=$1) + (SELECT count(*) FROM tasks WHERE integration_id=$1)`, id)
}

// samePartitionFixtures creates two integrations whose records share
// their partition on every topic, so that telling them apart is up to the
// filter on the record key and not to the choice of partitions, and sends
// each fixture's history (n events each), starting two minutes ago.
func samePartitionFixtures(e *Env, db *pgxpool.Pool) (a, b string, n int) {
	e.t.Helper()
	rr := kafka.NewReplayReader(e.Brokers)
	parts := e.Cfg.KafkaPartitions
	want := rr.PartitionOf(e.id("a"), parts)
	name := ""
	for i := range 1000 {
		if c := fmt.Sprintf("b%d", i); rr.PartitionOf(e.id(c), parts) == want {
			name = c
			break
		}
	}
	if name == "" {
		e.t.Fatalf("no integration id shares the partition of %s", e.id("a"))
	}
	a, sa := e.integration("a", nil)
	b, sb := e.integration(name, nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	n = fixture(e.t, e, db, a, sa, "a", t0)
	fixture(e.t, e, db, b, sb, "b", t0)
	return a, b, n
}

// Validate names, field by field, what an edit behind the system's back
// changed: a transaction's status and softpro_updated_at, a document's
// deleted flag, a task's last_event_id and payload, a contact's fields.
func TestReplayValidateNamesEachFieldEditedBehindTheBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	if rep := e.consistency(id); rep.Score != 100 || len(rep.Issues) != 0 {
		t.Fatalf("before tampering: score %d, issues %+v", rep.Score, rep.Issues)
	}
	tamper(t, db, id,
		`UPDATE transactions SET status='cancelled' WHERE integration_id=$1 AND id='txn_1'`,
		`UPDATE transactions SET softpro_updated_at=softpro_updated_at - interval '1 day' WHERE integration_id=$1 AND id='txn_2'`,
		`UPDATE documents SET deleted=false, deleted_at=NULL WHERE integration_id=$1 AND id='doc_1'`,
		`UPDATE tasks SET last_event_id='evt_forged', payload='{"id":"tsk_1","title":"Forged"}' WHERE integration_id=$1 AND id='tsk_1'`,
		`UPDATE contacts SET email='eve@example.com' WHERE integration_id=$1 AND id='con_1'`,
	)
	rep := e.consistency(id)
	if rep.Score >= 100 {
		t.Fatalf("edited read models score %d", rep.Score)
	}
	got := map[string]projections.Issue{}
	for _, is := range rep.Issues {
		if is.Kind != projections.IssueDiffers {
			t.Errorf("unexpected issue %+v", is)
			continue
		}
		got[string(is.EntityKind)+" "+is.EntityID] = is
	}
	for _, w := range []struct {
		entity string
		fields []string
		actual string
	}{
		{"transaction txn_1", []string{"status"}, "status=cancelled"},
		{"transaction txn_2", []string{"softpro_updated_at"}, "softpro_updated_at="},
		{"document doc_1", []string{"deleted", "deleted_at"}, "deleted=false"},
		{"task tsk_1", []string{"last_event_id", "payload"}, "last_event_id=evt_forged"},
		{"contact con_1", []string{"contact"}, "eve@example.com"},
	} {
		is, ok := got[w.entity]
		if !ok {
			t.Errorf("%s not reported as differing; issues %+v", w.entity, rep.Issues)
			continue
		}
		if !slices.Equal(is.Fields, w.fields) {
			t.Errorf("%s: fields %v, want %v", w.entity, is.Fields, w.fields)
		}
		if !strings.Contains(is.Actual, w.actual) {
			t.Errorf("%s: actual %q does not hold %q", w.entity, is.Actual, w.actual)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d entities reported differing, want 5: %+v", len(got), rep.Issues)
	}
}

// Validate names a transaction whose status history was edited behind the
// system's back (a change deleted, another's status rewritten) and an
// entity whose deleted_at was set while it is not deleted; gaps fill
// restores them exactly.
func TestValidateNamesStatusHistoryAndDeletedAtEditedBehindTheBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	before := readModelDump(t, db, id)
	tamper(t, db, id,
		`DELETE FROM transaction_status_changes WHERE integration_id=$1 AND transaction_id='txn_1'`,
		`UPDATE transaction_status_changes SET to_status='bogus' WHERE integration_id=$1 AND transaction_id='txn_2'`,
		`UPDATE tasks SET deleted_at='2020-01-01T00:00:00Z' WHERE integration_id=$1 AND id='tsk_1'`,
	)
	rep := e.consistency(id)
	got := map[string]projections.Issue{}
	for _, is := range rep.Issues {
		got[string(is.EntityKind)+" "+is.EntityID] = is
	}
	for _, w := range []struct {
		entity, field, actual string
	}{
		{"transaction txn_1", "status_history", "status_history=0 changes"},
		{"transaction txn_2", "status_history", "open→bogus"},
		{"task tsk_1", "deleted_at", "deleted_at=2020-01-01T00:00:00Z"},
	} {
		is, ok := got[w.entity]
		if !ok || is.Kind != projections.IssueDiffers || !slices.Equal(is.Fields, []string{w.field}) || !strings.Contains(is.Actual, w.actual) {
			t.Errorf("%s: %+v, want it differing in %s only, actual holding %q", w.entity, is, w.field, w.actual)
		}
	}
	if len(rep.Issues) != 3 {
		t.Errorf("issues %+v, want the three above", rep.Issues)
	}
	e.fill(id)
	e.restoredExactly(db, id, before)
}

// A row that no event produced (a contact inserted behind the system's
// back) is reported as an extra issue naming it, and lowers the score.
func TestReplayValidateReportsARowNoEventProduced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	tamper(t, db, id, `INSERT INTO contacts (integration_id, id, transaction_id, first_name, softpro_created_at, softpro_updated_at, last_event_id, payload)
 VALUES ($1, 'con_x', 'txn_1', 'Mallory', now(), now(), 'evt_none', '{"id":"con_x"}')`)
	rep := e.consistency(id)
	if rep.Score >= 100 {
		t.Fatalf("a row no event produced scores %d", rep.Score)
	}
	want := projections.Issue{Kind: projections.IssueExtra, EntityKind: domain.KindContact, EntityID: "con_x", Actual: "evt_none"}
	if len(rep.Issues) != 1 || rep.Issues[0].Kind != want.Kind || rep.Issues[0].EntityKind != want.EntityKind ||
		rep.Issues[0].EntityID != want.EntityID || rep.Issues[0].Actual != want.Actual {
		t.Fatalf("issues %+v, want only %+v", rep.Issues, want)
	}
	if rep.Entities != 6 {
		t.Fatalf("entities %d, want the 5 of the log and the extra row", rep.Entities)
	}
}

// An audit row deleted behind the system's back, and nothing else, is an
// audit-count issue of its type and hour, and lowers the score: the score
// counts the audit buckets, not only the entities.
func TestReplayValidateScoresAnAuditRowLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	tamper(t, db, id, `DELETE FROM webhook_events WHERE integration_id=$1 AND event_id='evt_04'`)
	rep := e.consistency(id)
	if rep.Score >= 100 {
		t.Fatalf("an audit row lost scores %d: %+v", rep.Score, rep)
	}
	if len(rep.Issues) != 1 {
		t.Fatalf("issues %+v, want one audit-count issue", rep.Issues)
	}
	is := rep.Issues[0]
	if is.Kind != projections.IssueAuditCount || is.EventType != domain.ContactCreated || is.Hour == nil || is.Expected != "1" || is.Actual != "0" {
		t.Fatalf("issue %+v, want contact.created expected 1 actual 0", is)
	}
	// The score is the share of entities, audit buckets and metrics rows
	// that agree; the metrics row of a bucket whose audit is short is not
	// compared (restoring the audit recounts it).
	if checked := rep.Entities + rep.AuditBuckets + rep.MetricsBuckets; rep.Entities != 5 || rep.MetricsBuckets != rep.AuditBuckets-1 ||
		rep.Score != (checked-1)*100/checked {
		t.Fatalf("score %d of %d entities, %d audit buckets and %d metrics rows, one bucket off", rep.Score, rep.Entities, rep.AuditBuckets, rep.MetricsBuckets)
	}

	// The gaps name it, and gaps fill restores it: the audit row as it was,
	// and its hour's metrics (which still counted it) counted once.
	g := e.gaps(id)
	if len(g) != 1 || g[0].Kind != projections.GapReadModel || g[0].Fill != projections.FillRefold || g[0].Records != 1 ||
		len(g[0].Issues) != 1 || g[0].Issues[0].Kind != projections.IssueAuditCount {
		t.Fatalf("gaps %+v, want one read-model gap of one audit row", g)
	}
	if fill := e.fill(id); len(fill.Errors) != 0 || len(fill.Replayed) != 1 || fill.Replayed[0].AuditRestored != 1 {
		t.Fatalf("fill %+v, want one audit row restored", fill)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after fill:\n got %s\nwant %s", got, want)
	}
	if g := e.gaps(id); len(g) != 0 {
		t.Fatalf("gaps after fill: %+v", g)
	}
}

// A read-model row that is only deleted shows in the gaps as a read-model
// gap naming it, and gaps fill restores it exactly.
func TestReplayGapsNameADeletedRowAndFillRestoresIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	if g := e.gaps(id); len(g) != 0 {
		t.Fatalf("gaps before tampering: %+v", g)
	}
	tamper(t, db, id, `DELETE FROM tasks WHERE integration_id=$1 AND id='tsk_1'`)
	g := e.gaps(id)
	if len(g) != 1 {
		t.Fatalf("gaps %+v, want one read-model gap", g)
	}
	if g[0].Kind != projections.GapReadModel || g[0].Fill != projections.FillRefold || g[0].Records != 1 || len(g[0].Issues) != 1 {
		t.Fatalf("gap %+v, want a read-model gap of one row filled by a refold", g[0])
	}
	if is := g[0].Issues[0]; is.Kind != projections.IssueMissing || is.EntityKind != domain.KindTask || is.EntityID != "tsk_1" {
		t.Fatalf("gap issue %+v, want task tsk_1 missing", is)
	}
	if rep := e.fill(id); len(rep.Errors) != 0 {
		t.Fatalf("fill errors: %+v", rep.Errors)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after fill:\n got %s\nwant %s", got, want)
	}
	if g := e.gaps(id); len(g) != 0 {
		t.Fatalf("gaps after fill: %+v", g)
	}
}

// A row whose status was edited behind the system's back is restored by a
// resync, which then reports a consistency score of 100.
func TestReplayResyncRestoresReadModelsEditedBehindTheBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.syncIntegration("resync", nil)
	s, srv := simulator(t, sim.Config{Records: 10, MaxPage: 25}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 60*time.Second)
	row := `SELECT id, status, softpro_updated_at, last_event_id, deleted, payload::text FROM transactions WHERE integration_id=$1 ORDER BY id LIMIT 1`
	want := queryString(t, db, row, id)
	if want == "" {
		t.Fatal("no transaction synced")
	}
	txn := strings.Fields(want)[0]
	status := queryString(t, db, `SELECT status FROM transactions WHERE integration_id=$1 AND id=$2`, id, txn)
	forged := status + "_forged"
	tamper(t, db, id, `UPDATE transactions SET status='`+forged+`' WHERE integration_id=$1 AND id='`+txn+`'`)
	// And the other read models: every hourly metrics row, one audit row's
	// time of receipt.
	audit := `SELECT event_id, received_at FROM webhook_events WHERE integration_id=$1 ORDER BY event_id`
	wantAudit := queryString(t, db, audit, id)
	metrics := `SELECT event_type, hour, received, completed FROM integration_metrics_hourly WHERE integration_id=$1 ORDER BY 1, 2`
	wantMetrics := queryString(t, db, metrics, id)
	tamper(t, db, id, `UPDATE integration_metrics_hourly SET received = received + 7 WHERE integration_id=$1`)
	tamper(t, db, id, `UPDATE webhook_events SET received_at = received_at + interval '1 second'
 WHERE id = (SELECT id FROM webhook_events WHERE integration_id=$1 ORDER BY event_id LIMIT 1)`)
	if rep := e.consistency(id); rep.Score == 100 {
		t.Fatalf("consistency after editing a status: %+v", rep)
	}

	code, raw := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/resync", e.Token, nil)
	if code != http.StatusOK {
		t.Fatalf("resync: %d %s", code, raw)
	}
	var rep projections.ResyncReport
	apiData(t, raw, &rep)
	if rep.Consistency.Score != 100 || len(rep.Consistency.Issues) != 0 {
		t.Errorf("consistency in the resync report: %d %+v", rep.Consistency.Score, rep.Consistency.Issues)
	}
	if got := queryString(t, db, row, id); got != want {
		t.Fatalf("after resync:\n got %s\nwant %s", got, want)
	}
	if got := queryString(t, db, audit, id); got != wantAudit || rep.AuditRefiled != 1 {
		t.Fatalf("audit after resync (%d refiled, want 1):\n got %s\nwant %s", rep.AuditRefiled, got, wantAudit)
	}
	if got := queryString(t, db, metrics, id); got != wantMetrics || rep.Recounted == 0 {
		t.Fatalf("metrics after resync (%d recounted):\n got %s\nwant %s", rep.Recounted, got, wantMetrics)
	}
	if c := e.consistency(id); c.Score != 100 {
		t.Fatalf("consistency after resync: %d %+v", c.Score, c.Issues)
	}
}

// A replay from a time after the first events re-applies only the records
// appended in the window: its report counts only them, and a row whose
// events all came before the window, deleted behind the system's back,
// stays deleted while a row of the window is restored.
func TestReplayFromAppliesOnlyTheWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	send := func(eventID string, typ domain.EventType, data string) {
		t.Helper()
		if r := e.send(signedWebhook(id, secret, event(eventID, typ, time.Now(), data))); r.Status != 200 {
			t.Fatalf("%s: %d %s", eventID, r.Status, r.Raw)
		}
	}
	send("early_1", domain.TransactionCreated, `{"id":"txn_1","file_number":"F-1","status":"open"}`)
	send("early_2", domain.ContactCreated, `{"id":"con_1","transaction_id":"txn_1","first_name":"Ada"}`)
	waitAudit(t, db, id, 2)
	time.Sleep(1100 * time.Millisecond)
	from := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	send("late_1", domain.TaskCreated, `{"id":"tsk_1","transaction_id":"txn_1","title":"Search","status":"open"}`)
	send("late_2", domain.TaskCompleted, `{"id":"tsk_1"}`)
	send("late_3", domain.DocumentUploaded, `{"id":"doc_1","transaction_id":"txn_1","name":"deed.pdf"}`)
	waitAudit(t, db, id, 5)
	taskRow := `SELECT id, title, status, softpro_updated_at, last_event_id, deleted, payload::text FROM tasks WHERE integration_id=$1`
	wantTask := queryString(t, db, taskRow, id)

	tamper(t, db, id,
		`DELETE FROM contacts WHERE integration_id=$1 AND id='con_1'`,
		`DELETE FROM tasks WHERE integration_id=$1 AND id='tsk_1'`,
	)
	rep := e.replay(id, map[string]any{"from": from.Format(time.RFC3339Nano)})
	if rep.Records != 3 {
		t.Fatalf("replay from %s read %d records, want the 3 of the window: %+v", from, rep.Records, rep)
	}
	if rep.From == nil || !rep.From.Equal(from) {
		t.Fatalf("report from %v, want %s", rep.From, from)
	}
	if got := queryString(t, db, taskRow, id); got != wantTask {
		t.Fatalf("task of the window after replay:\n got %s\nwant %s", got, wantTask)
	}
	if got := queryString(t, db, `SELECT count(*) FROM contacts WHERE integration_id=$1`, id); got != "0" {
		t.Fatalf("a contact whose events precede the window was restored: %s rows", got)
	}
}

// Validate of one integration folds only its own records, even from a
// partition it shares with another integration, and reads only its own
// rows: the other's rows tampered with change nothing to its report.
func TestReplayValidateCountsOnlyItsIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	a, b, n := samePartitionFixtures(e, db)
	tamper(t, db, b,
		`DELETE FROM transactions WHERE integration_id=$1 AND id='txn_1'`,
		`UPDATE tasks SET status='open' WHERE integration_id=$1 AND id='tsk_1'`,
		`DELETE FROM webhook_events WHERE integration_id=$1 AND event_id='b_04'`,
	)
	rep := e.consistency(a)
	if rep.Score != 100 || len(rep.Issues) != 0 {
		t.Fatalf("%s with the other integration tampered with: score %d, issues %+v", a, rep.Score, rep.Issues)
	}
	if got := fmt.Sprint(rep.Entities); got != entityRows(t, db, a) {
		t.Fatalf("%s: %d entities checked, want its %s rows", a, rep.Entities, entityRows(t, db, a))
	}
	if rep.Events != int64(n) {
		t.Fatalf("%s: %d events folded, want its %d", a, rep.Events, n)
	}
	if rb := e.consistency(b); rb.Score >= 100 {
		t.Fatalf("%s tampered with scores %d", b, rb.Score)
	}
}

// A replay of one integration leaves another integration's rows alone,
// even when both share a partition: a row of the other deleted behind the
// system's back stays deleted.
func TestReplayOfOneIntegrationLeavesAnotherAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	a, b, n := samePartitionFixtures(e, db)
	tamper(t, db, b, `DELETE FROM tasks WHERE integration_id=$1 AND id='tsk_1'`)
	wantB := readModelDump(t, db, b)
	rep := e.replay(a, nil)
	if rep.Records != int64(n) || rep.Applied != 0 {
		t.Fatalf("replay of %s: %+v, want its %d records and nothing applied", a, rep, n)
	}
	if got := readModelDump(t, db, b); got != wantB {
		t.Fatalf("replay of %s changed %s:\n got %s\nwant %s", a, b, got, wantB)
	}
}

// A replay limited to contact.created reads only those records of the
// integration and leaves rows of other types alone: a task row deleted
// behind the system's back stays deleted.
func TestReplayOfOneTypeLeavesOtherTypesAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, n := fixtureIntegration(t, e, db, "evt")
	for i := range 2 {
		w := signedWebhook(id, secret, event(fmt.Sprintf("more_%d", i), domain.ContactCreated, time.Now(), fmt.Sprintf(`{"id":"con_m%d","first_name":"M"}`, i)))
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("contact %d: %d %s", i, r.Status, r.Raw)
		}
	}
	waitAudit(t, db, id, n+2)
	contacts := 0
	for _, topic := range domain.AllTopics {
		for _, r := range e.records(topic) {
			if r.Key == id && r.Envelope.Type == domain.ContactCreated {
				contacts++
			}
		}
	}
	if contacts != 3 {
		t.Fatalf("%d contact.created records on the log, want 3", contacts)
	}
	tamper(t, db, id, `DELETE FROM tasks WHERE integration_id=$1 AND id='tsk_1'`)
	want := readModelDump(t, db, id)
	rep := e.replay(id, map[string]any{"types": []string{string(domain.ContactCreated), "contact.craeted"}})
	if rep.Records != int64(contacts) || rep.Applied != 0 {
		t.Fatalf("replay of contact.created: %+v, want %d records and nothing applied", rep, contacts)
	}
	if len(rep.UnknownTypes) != 1 || rep.UnknownTypes[0] != "contact.craeted" {
		t.Fatalf("replay's unknown types = %v, want [contact.craeted]", rep.UnknownTypes)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("replay of contact.created changed the read models:\n got %s\nwant %s", got, want)
	}
}

// Hourly metrics rows edited or deleted behind the system's back disagree
// with the audit rows they count: validate names them, and gaps fill
// counts them again, the totals across integrations with them.
func TestReplayValidateFindsMetricsChangedBehindTheBackAndFillRecountsThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	tamper(t, db, id,
		`UPDATE integration_metrics_hourly SET received = received + 4, failed = 2 WHERE integration_id=$1 AND event_type='task.created'`,
		`DELETE FROM integration_metrics_hourly WHERE integration_id=$1 AND event_type='contact.updated'`,
		`UPDATE integration_metrics_hourly SET total_processing_ms = total_processing_ms + 1 WHERE integration_id=$1 AND event_type='document.uploaded'`,
		// The histogram alone: its one count moved to the next bucket, and
		// one not laid out in the buckets at all.
		`UPDATE integration_metrics_hourly SET latency_buckets = latency_buckets[13:13] || latency_buckets[1:12] WHERE integration_id=$1 AND event_type='task.completed'`,
		`UPDATE integration_metrics_hourly SET latency_buckets = '{1}' WHERE integration_id=$1 AND event_type='closing.scheduled'`)
	rep := e.consistency(id)
	var found []string
	for _, is := range rep.Issues {
		if is.Kind != projections.IssueMetrics {
			t.Errorf("issue %+v, want metrics issues only", is)
		}
		found = append(found, string(is.EventType)+": "+strings.Join(strings.Fields(is.Actual)[:4], " "))
		if is.EventType == domain.TaskCompleted || is.EventType == domain.ClosingScheduled {
			// Only the histograms differ, each still counting the one event.
			exp, act := strings.SplitN(is.Expected, " latency_buckets=", 2), strings.SplitN(is.Actual, " latency_buckets=", 2)
			if len(exp) != 2 || len(act) != 2 || exp[0] != act[0] || exp[1] == act[1] || strings.Count(exp[1], "1") != 1 {
				t.Errorf("%s: expected %q, actual %q: want the histograms alone to differ", is.EventType, is.Expected, is.Actual)
			}
		}
	}
	slices.Sort(found)
	if fmt.Sprint(found) != "[closing.scheduled: received=1 completed=1 failed=0 skipped=0 contact.updated: received=0 completed=0 failed=0 skipped=0 "+
		"document.uploaded: received=1 completed=1 failed=0 skipped=0 task.completed: received=1 completed=1 failed=0 skipped=0 "+
		"task.created: received=5 completed=1 failed=2 skipped=0]" {
		t.Fatalf("metrics issues %v", found)
	}
	if checked := rep.Entities + rep.AuditBuckets + rep.MetricsBuckets; rep.Score != (checked-5)*100/checked {
		t.Fatalf("score %d of %d checked, five metrics rows off", rep.Score, checked)
	}
	g := e.gaps(id)
	if len(g) != 1 || g[0].Kind != projections.GapMetrics || g[0].Fill != projections.FillRecount || g[0].Records != 5 {
		t.Fatalf("gaps %+v, want one metrics gap of five rows", g)
	}
	if fill := e.fill(id); len(fill.Errors) != 0 || fill.Recounted != 5 {
		t.Fatalf("fill %+v, want five rows recounted", fill)
	}
	e.restoredExactly(db, id, want)
	// The totals of the integration's types and hours are the sums of the
	// hourly rows again.
	sums := `SELECT event_type, hour, sum(received)::bigint, sum(completed)::bigint, sum(failed)::bigint FROM integration_metrics_hourly
 WHERE (event_type, hour) IN (SELECT event_type, hour FROM integration_metrics_hourly WHERE integration_id=$1) GROUP BY 1, 2 ORDER BY 1, 2`
	totals := `SELECT event_type, hour, received, completed, failed FROM metrics_hourly_totals
 WHERE (event_type, hour) IN (SELECT event_type, hour FROM integration_metrics_hourly WHERE integration_id=$1) ORDER BY 1, 2`
	if got, want := queryString(t, db, totals, id), queryString(t, db, sums, id); got != want {
		t.Fatalf("totals after fill:\n got %s\nwant %s", got, want)
	}
}

// A row edited behind the system's back with a later softpro_updated_at
// than any event of it holds nothing newer than the log: gaps fill
// replaces it with the log's fold, exactly.
func TestReplayFillRestoresARowEditedWithALaterTimestamp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	tamper(t, db, id,
		`UPDATE transactions SET status = 'cancelled', softpro_updated_at = softpro_updated_at + interval '1 day' WHERE integration_id = $1 AND id = 'txn_1'`)
	if rep := e.consistency(id); rep.Score == 100 {
		t.Fatal("validate found nothing")
	}
	if fill := e.fill(id); len(fill.Errors) != 0 {
		t.Fatalf("fill: %+v", fill)
	}
	e.restoredExactly(db, id, want)
}

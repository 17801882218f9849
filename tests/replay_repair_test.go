package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/projections"
)

// readModelDump renders every read-model row of integration id in a fixed
// order, leaving out only the columns that record when the projector ran.
func readModelDump(t *testing.T, db *pgxpool.Pool, id string) string {
	t.Helper()
	return dumpOf(t, db, id, true)
}

func dumpOf(t *testing.T, db *pgxpool.Pool, id string, metrics bool) string {
	t.Helper()
	queries := []string{
		`SELECT id, file_number, status, property_address, coalesce(closing_date::text,''), coalesce(closed_at::text,''), softpro_created_at, softpro_updated_at, last_event_id, deleted, payload::text FROM transactions WHERE integration_id=$1 ORDER BY id`,
		`SELECT id, transaction_id, first_name, last_name, email, phone, role, softpro_updated_at, last_event_id, deleted, payload::text FROM contacts WHERE integration_id=$1 ORDER BY id`,
		`SELECT id, transaction_id, name, document_type, url, softpro_updated_at, last_event_id, deleted, payload::text FROM documents WHERE integration_id=$1 ORDER BY id`,
		`SELECT id, transaction_id, title, status, assigned_to, coalesce(due_date::text,''), coalesce(completed_at::text,''), softpro_updated_at, last_event_id, deleted, payload::text FROM tasks WHERE integration_id=$1 ORDER BY id`,
		`SELECT transaction_id, from_status, to_status, changed_at, event_id FROM transaction_status_changes WHERE integration_id=$1 ORDER BY event_id`,
		`SELECT event_id, event_type, status, applied, source, topic, "partition", "offset", payload::text FROM webhook_events WHERE integration_id=$1 ORDER BY event_id`,
		`SELECT event_type, hour, received, completed, failed, skipped FROM integration_metrics_hourly WHERE integration_id=$1 ORDER BY event_type, hour`,
	}
	if !metrics {
		queries = queries[:len(queries)-1]
	}
	var b strings.Builder
	for _, q := range queries {
		b.WriteString(queryString(t, db, q, id))
		b.WriteString("\n")
	}
	return b.String()
}

// fixture sends a small history touching every entity kind, with updates,
// a status change and a delete, and waits until it is projected.
func fixture(t *testing.T, e *Env, db *pgxpool.Pool, id, secret, prefix string, t0 time.Time) int {
	t.Helper()
	steps := []struct {
		typ  domain.EventType
		data string
	}{
		{domain.TransactionCreated, `{"id":"txn_1","file_number":"F-1","status":"open","property":{"address":"1 Main St"}}`},
		{domain.TransactionCreated, `{"id":"txn_2","file_number":"F-2","status":"open"}`},
		{domain.TransactionStatusChanged, `{"id":"txn_1","status":"in_progress"}`},
		{domain.ClosingScheduled, `{"id":"cls_1","transaction_id":"txn_1","closing_date":"2024-02-01"}`},
		{domain.ContactCreated, `{"id":"con_1","transaction_id":"txn_1","first_name":"Ada","email":"ada@example.com"}`},
		{domain.ContactUpdated, `{"id":"con_1","email":"ada@lovelace.example"}`},
		{domain.DocumentUploaded, `{"id":"doc_1","transaction_id":"txn_1","name":"deed.pdf"}`},
		{domain.DocumentDeleted, `{"id":"doc_1"}`},
		{domain.TaskCreated, `{"id":"tsk_1","transaction_id":"txn_1","title":"Search","status":"open"}`},
		{domain.TaskCompleted, `{"id":"tsk_1"}`},
		{domain.TransactionUpdated, `{"id":"txn_2","status":"closed"}`},
	}
	for i, s := range steps {
		w := signedWebhook(id, secret, event(fmt.Sprintf("%s_%02d", prefix, i), s.typ, t0.Add(time.Duration(i)*time.Second), s.data))
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("%s: %d %s", s.typ, r.Status, r.Raw)
		}
	}
	waitAudit(t, db, id, len(steps))
	return len(steps)
}

// fixtureIntegration creates integration "a" and sends it fixture's
// history, starting two minutes ago.
func fixtureIntegration(t *testing.T, e *Env, db *pgxpool.Pool, prefix string) (id, secret string, n int) {
	t.Helper()
	id, secret = e.integration("a", nil)
	return id, secret, fixture(t, e, db, id, secret, prefix, time.Now().Add(-2*time.Minute).Truncate(time.Second))
}

// waitAudit waits until at least n events of id are final in the audit.
func waitAudit(t *testing.T, db *pgxpool.Pool, id string, n int) {
	t.Helper()
	eventually(t, 60*time.Second, func() string {
		got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id=$1 AND status IN ('COMPLETED','SKIPPED')`, id)
		if got != fmt.Sprint(n) {
			return fmt.Sprintf("final audit rows: %s, want %d", got, n)
		}
		return ""
	})
}

// tamper runs statements on the read models behind the system's back, each
// with the integration id as $1.
func tamper(t *testing.T, db *pgxpool.Pool, id string, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(t.Context(), q, id); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// restoredExactly fails the test unless id's read models dump as want
// and validate scores them 100.
func (e *Env) restoredExactly(db *pgxpool.Pool, id, want string) {
	e.t.Helper()
	if got := readModelDump(e.t, db, id); got != want {
		e.t.Fatalf("after fill:\n got %s\nwant %s", got, want)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		e.t.Fatalf("after fill: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

// replay runs POST …/{id}/replay with body and returns its report.
func (e *Env) replay(id string, body map[string]any) projections.ReplayReport {
	e.t.Helper()
	return adminData[projections.ReplayReport](e, http.MethodPost, "/api/v1/integrations/softpro/"+id+"/replay", body)
}

// gaps runs GET …/{id}/gaps.
func (e *Env) gaps(id string) []projections.Gap {
	e.t.Helper()
	return adminData[struct {
		Gaps []projections.Gap `json:"gaps"`
	}](e, http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps", nil).Gaps
}

// fill runs POST …/{id}/gaps/fill and returns its report.
func (e *Env) fill(id string) projections.FillReport {
	e.t.Helper()
	return adminData[projections.FillReport](e, http.MethodPost, "/api/v1/integrations/softpro/"+id+"/gaps/fill", nil)
}

// appendAgain appends env straight to the log, as a redelivery past the
// dedup window would, and waits until the live projectors have passed it.
func appendAgain(t *testing.T, db *pgxpool.Pool, producer *kafka.Producer, env domain.Envelope) {
	t.Helper()
	pos, err := producer.Append(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT coalesce(max(next_offset), 0) FROM projection_checkpoints WHERE topic = $1 AND "partition" = $2`, pos.Topic, pos.Partition)
		if mustInt(got) <= pos.Offset {
			return fmt.Sprintf("checkpoint of %s/%d at %s, want past %d", pos.Topic, pos.Partition, got, pos.Offset)
		}
		return ""
	})
}

// consistency runs GET …/{id}/consistency.
func (e *Env) consistency(id string) projections.ConsistencyReport {
	e.t.Helper()
	return adminData[projections.ConsistencyReport](e, http.MethodGet, "/api/v1/integrations/softpro/"+id+"/consistency", nil)
}

// adminData calls path with the admin token and returns the data of its
// 200 answer.
func adminData[T any](e *Env, method, path string, body any) T {
	e.t.Helper()
	status, raw := e.call(method, path, e.Token, body)
	if status != http.StatusOK {
		e.t.Fatalf("%s %s: %d %s", method, path, status, raw)
	}
	var v T
	apiData(e.t, raw, &v)
	return v
}

func TestReplayValidateFindsRowsChangedBehindTheBackAndFillRestoresThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	if rep := e.consistency(id); rep.Score != 100 || len(rep.Issues) != 0 {
		t.Fatalf("before tampering: score %d, issues %+v", rep.Score, rep.Issues)
	}

	// Behind the system's back: a row deleted, a status edited, an audit
	// row deleted.
	tamper(t, db, id,
		`DELETE FROM transactions WHERE integration_id=$1 AND id='txn_1'`,
		`UPDATE tasks SET status='open' WHERE integration_id=$1 AND id='tsk_1'`,
		`DELETE FROM contacts WHERE integration_id=$1`,
		`DELETE FROM webhook_events WHERE integration_id=$1 AND event_id='evt_04'`)
	rep := e.consistency(id)
	if rep.Score >= 100 {
		t.Fatalf("tampered read models score %d", rep.Score)
	}
	found := map[string]bool{}
	for _, is := range rep.Issues {
		found[is.Kind+" "+string(is.EntityKind)+" "+is.EntityID+" "+strings.Join(is.Fields, ",")] = true
		if is.Kind == projections.IssueAuditCount && is.EventType == domain.ContactCreated {
			found["audit contact.created"] = true
		}
	}
	for _, w := range []string{"missing transaction txn_1 ", "missing contact con_1 ", "differs task tsk_1 status", "audit contact.created"} {
		if !found[w] {
			t.Errorf("issue %q not reported; got %+v", w, rep.Issues)
		}
	}

	e.fill(id)
	// The hourly metrics, which still counted the deleted audit row, count
	// the restored one once: as before the tampering.
	e.restoredExactly(db, id, want)
	// Filling again changes nothing.
	e.fill(id)
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after second fill:\n got %s\nwant %s", got, want)
	}
}

func TestReplayingAWindowTwiceIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	body := map[string]any{"from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "to": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}
	for i := range 2 {
		rep := e.replay(id, body)
		if rep.Records != 11 || rep.Applied != 0 || rep.AuditRestored != 0 {
			t.Fatalf("replay %d over intact read models: %+v", i, rep)
		}
		if got := readModelDump(t, db, id); got != want {
			t.Fatalf("after replay %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// With a row gone, the first replay restores it and the second finds
	// nothing left to do.
	tamper(t, db, id, `DELETE FROM documents WHERE integration_id=$1`)
	for i := range 2 {
		rep := e.replay(id, body)
		if wantApplied := int64(2 * (1 - i)); rep.Applied != wantApplied {
			t.Fatalf("replay %d after a delete applied %d, want %d", i, rep.Applied, wantApplied)
		}
		if got := readModelDump(t, db, id); got != want {
			t.Fatalf("after replay %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

package tests

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
)

// db opens the env's schema for assertions.
func (e *Env) db() *pgxpool.Pool {
	e.t.Helper()
	return e.dbAt(e.Cfg.DatabaseURL)
}

func (e *Env) dbAt(url string) *pgxpool.Pool {
	e.t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		e.t.Fatalf("open %s: %v", url, err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// eventually polls fn until it returns "" or the deadline passes, then
// fails with fn's last complaint.
func eventually(t *testing.T, within time.Duration, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := fn()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queryString(t *testing.T, db *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	rows, err := db.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		v, err := r.Values()
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, " "), err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(vals, "|")
}

// at formats a time SoftPro-style.
func at(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func event(eventID string, typ domain.EventType, ts time.Time, data string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":%q,"data":%s}`, eventID, typ, at(ts), data))
}

func TestEveryEventTypeProjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	steps := []struct {
		typ  domain.EventType
		data string
	}{
		{domain.TransactionCreated, `{"id":"txn_1","file_number":"2024-001","status":"open","property":{"address":"123 Main St"}}`},
		{domain.TransactionUpdated, `{"id":"txn_1","file_number":"2024-001A","status":"in_progress"}`},
		{domain.TransactionStatusChanged, `{"id":"txn_1","previous_status":"in_progress","status":"clear_to_close"}`},
		{domain.ClosingScheduled, `{"id":"cls_1","transaction_id":"txn_1","closing_date":"2024-02-01"}`},
		{domain.ClosingCompleted, `{"id":"cls_1","transaction_id":"txn_1"}`},
		{domain.DocumentUploaded, `{"id":"doc_1","transaction_id":"txn_1","name":"deed.pdf"}`},
		{domain.DocumentUpdated, `{"id":"doc_1","name":"deed-signed.pdf"}`},
		{domain.DocumentDeleted, `{"id":"doc_1"}`},
		{domain.ContactCreated, `{"id":"con_1","first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"}`},
		{domain.ContactUpdated, `{"id":"con_1","email":"ada@lovelace.example"}`},
		{domain.ContactDeleted, `{"id":"con_1"}`},
		{domain.TaskCreated, `{"id":"tsk_1","transaction_id":"txn_1","title":"Order title search","status":"open","due_date":"2024-01-20T00:00:00Z"}`},
		{domain.TaskCompleted, `{"id":"tsk_1"}`},
	}
	for i, s := range steps {
		w := signedWebhook(id, secret, event(fmt.Sprintf("evt_%02d", i), s.typ, t0.Add(time.Duration(i)*time.Second), s.data))
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("%s: %d %s", s.typ, r.Status, r.Raw)
		}
	}
	unknown := signedWebhook(id, secret, event("evt_unknown", "escrow.funded", t0, `{"id":"esc_1"}`))
	if r := e.send(unknown); r.Status != 200 {
		t.Fatalf("unknown type: %d %s", r.Status, r.Raw)
	}

	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT status, count(*) FROM webhook_events WHERE integration_id=$1 GROUP BY status ORDER BY status`, id)
		if got != "COMPLETED 13|SKIPPED 1" {
			return "audit statuses: " + got
		}
		return ""
	})
	checks := []struct{ sql, want string }{
		{`SELECT file_number, status, property_address, closing_date::text, closed_at IS NOT NULL, deleted FROM transactions WHERE integration_id=$1`,
			"2024-001A clear_to_close 123 Main St 2024-02-01 true false"},
		{`SELECT from_status, to_status FROM transaction_status_changes WHERE integration_id=$1 ORDER BY changed_at, id`,
			"open in_progress|in_progress clear_to_close"},
		{`SELECT name, deleted FROM documents WHERE integration_id=$1`, "deed-signed.pdf true"},
		{`SELECT first_name, email, deleted FROM contacts WHERE integration_id=$1`, "Ada ada@lovelace.example true"},
		{`SELECT title, status, completed_at IS NOT NULL FROM tasks WHERE integration_id=$1`, "Order title search completed true"},
		{`SELECT sum(received)::bigint, sum(completed)::bigint, sum(failed)::bigint FROM integration_metrics_hourly WHERE integration_id=$1`, "14 13 0"},
		{`SELECT event_type, source, topic FROM webhook_events WHERE integration_id=$1 AND event_id='evt_unknown'`, "escrow.funded webhook softpro.other.v1"},
	}
	for _, c := range checks {
		if got := queryString(t, db, c.sql, id); got != c.want {
			t.Errorf("%s\n got %q\nwant %q", c.sql, got, c.want)
		}
	}
	assertTotalsMatch(t, db)
	if got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id=$1 AND (processing_time_ms IS NULL OR processed_at IS NULL)`, id); got != "0" {
		t.Errorf("events without processing time : %s", got)
	}
}

// assertTotalsMatch checks the all-integration hourly totals against the
// per-integration rows they are kept from.
func assertTotalsMatch(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	q := `SELECT event_type, hour, sum(received)::bigint, sum(completed)::bigint, sum(failed)::bigint, sum(skipped)::bigint, sum(total_processing_ms)::bigint
 FROM integration_metrics_hourly GROUP BY 1, 2 ORDER BY 1, 2`
	want := queryString(t, db, q)
	got := queryString(t, db, `SELECT event_type, hour, received, completed, failed, skipped, total_processing_ms FROM metrics_hourly_totals
 WHERE received <> 0 OR completed <> 0 OR failed <> 0 OR skipped <> 0 ORDER BY 1, 2`)
	if got != want {
		t.Fatalf("metrics_hourly_totals drifted from integration_metrics_hourly:\n got %s\nwant %s", got, want)
	}
}

func TestNewestWinsAndIntegrationsDoNotCollide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	now := time.Now().Truncate(time.Second)
	send := func(in, secret, eid string, ts time.Time, status string) {
		t.Helper()
		w := signedWebhook(in, secret, event(eid, domain.TransactionUpdated, ts, fmt.Sprintf(`{"id":"txn_same","status":%q}`, status)))
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("%s: %d %s", eid, r.Status, r.Raw)
		}
	}
	send(a, sa, "evt_new", now, "closed")
	send(a, sa, "evt_late", now.Add(-time.Minute), "open") // older, arrives later
	send(b, sb, "evt_new", now.Add(-time.Minute), "open")  // same ids, other integration
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT integration_id, status FROM transactions ORDER BY integration_id`)
		if got != a+" closed|"+b+" open" {
			return "transactions: " + got
		}
		if n := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE status='COMPLETED'`); n != "3" {
			return "completed audit rows: " + n
		}
		return ""
	})
	if got := queryString(t, db, `SELECT applied FROM webhook_events WHERE integration_id=$1 AND event_id='evt_late'`, a); got != "false" {
		t.Fatalf("late event applied=%s, want recorded but not applied", got)
	}
}

func TestPoisonedEventIsFailedAndDoesNotBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.QueueRetryDelayMs = 10 })
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	// A task event whose data has no id can never project.
	if r := e.send(signedWebhook(id, secret, event("evt_bad", domain.TaskCreated, now, `{"title":"no id"}`))); r.Status != 200 {
		t.Fatalf("bad: %d %s", r.Status, r.Raw)
	}
	if r := e.send(signedWebhook(id, secret, event("evt_good", domain.TaskCreated, now, `{"id":"tsk_9","title":"fine"}`))); r.Status != 200 {
		t.Fatalf("good: %d %s", r.Status, r.Raw)
	}
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT event_id, status, coalesce(error,'') <> '' FROM webhook_events WHERE integration_id=$1 ORDER BY event_id`, id)
		if got != "evt_bad FAILED true|evt_good COMPLETED false" {
			return "audit: " + got
		}
		return ""
	})
	assertTotalsMatch(t, db)
	if n := len(e.records(domain.TopicPoison)); n != 1 {
		t.Fatalf("poison topic holds %d records, want 1", n)
	}
}

func TestFloodOnOneFamilyDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", map[string]any{"ingestRateLimit": 1_000_000})
	const flood = 3000
	now := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body := event(fmt.Sprintf("evt_doc_%d", i), domain.DocumentUploaded, now, fmt.Sprintf(`{"id":"doc_%d","name":"d"}`, i))
				if r := e.send(signedWebhook(id, secret, body)); r.Status != 200 {
					t.Errorf("doc %d: %d", i, r.Status)
				}
			}
		}()
	}
	for i := range flood {
		work <- i
	}
	close(work)
	wg.Wait()
	// The flood is on the log; a status change now must not wait for it.
	sent := time.Now()
	if r := e.send(signedWebhook(id, secret, event("evt_status", domain.TransactionStatusChanged, now, `{"id":"txn_1","status":"closed"}`))); r.Status != 200 {
		t.Fatalf("status change: %d %s", r.Status, r.Raw)
	}
	eventually(t, 30*time.Second, func() string {
		if got := queryString(t, db, `SELECT status FROM transactions WHERE integration_id=$1`, id); got != "closed" {
			return "transaction not projected yet"
		}
		return ""
	})
	statusLatency := time.Since(sent)
	docs := queryString(t, db, `SELECT count(*) FROM documents WHERE integration_id=$1`, id)
	t.Logf("status change visible after %v with %s/%d documents projected", statusLatency, docs, flood)
	if docs == fmt.Sprint(flood) {
		t.Logf("the document flood had drained before the status change was visible; isolation not exercised this run")
	}
	if statusLatency > 5*time.Second {
		t.Fatalf("status change took %v behind a document flood", statusLatency)
	}
	eventually(t, 120*time.Second, func() string {
		if got := queryString(t, db, `SELECT count(*) FROM documents WHERE integration_id=$1`, id); got != fmt.Sprint(flood) {
			return "documents projected: " + got
		}
		return ""
	})
}

package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// A webhook of a webhook type without "data" is accepted (verified events
// are kept) and fails as unprojectable, "payload has no data object",
// instead of creating an entity keyed by the event id out of the webhook's
// own id, type and timestamp. The log, validate and the live read models
// agree.
func TestWebhookWithoutDataFailsAndMakesNoEntity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := sendWithAndWithoutData(t, e)
	if status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/transactions/e_nodata", e.Token, nil); status != http.StatusNotFound {
		t.Errorf("GET transactions/e_nodata: %d %s, want 404", status, raw)
	}
	if got := queryString(t, db, `SELECT string_agg(id, ',') FROM transactions WHERE integration_id = $1`, id); got != "txn_1" {
		t.Errorf("transactions %q, want txn_1", got)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Errorf("consistency: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

// sendWithAndWithoutData sends a new integration's webhooks e_nodata (a
// transaction.created without "data") and e_ok (with it), waits for both
// to be final (noDataFailed); it returns the integration's id, the time
// both were stamped with and e_nodata's body.
func sendWithAndWithoutData(t *testing.T, e *Env) (id string, now time.Time, noData []byte) {
	t.Helper()
	id, secret := e.integration("a", nil)
	now = time.Now()
	noData = []byte(fmt.Sprintf(`{"id":"e_nodata","type":"transaction.created","timestamp":%q}`, at(now)))
	if r := e.send(signedWebhook(id, secret, noData)); r.Status != 200 {
		t.Fatalf("e_nodata: %d %s", r.Status, r.Raw)
	}
	if r := e.send(signedWebhook(id, secret, event("e_ok", domain.TransactionCreated, now, `{"id":"txn_1","status":"open"}`))); r.Status != 200 {
		t.Fatalf("e_ok: %d %s", r.Status, r.Raw)
	}
	noDataFailed(t, e.db(), id)
	return id, now, noData
}

// noDataFailed waits until e_ok and e_nodata of integration id are final,
// and fails the test unless e_ok completed and e_nodata failed for want of
// a data object.
func noDataFailed(t *testing.T, db *pgxpool.Pool, id string) {
	t.Helper()
	eventually(t, 60*time.Second, func() string {
		got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id = $1 AND status IN ('COMPLETED', 'FAILED', 'SKIPPED')`, id)
		if got != "2" {
			return "final audit rows: " + got + ", want 2"
		}
		return ""
	})
	if got := queryString(t, db, `SELECT status FROM webhook_events WHERE integration_id = $1 AND event_id = 'e_ok'`, id); got != "COMPLETED" {
		t.Fatalf("e_ok: %s, want COMPLETED", got)
	}
	got := queryString(t, db, `SELECT status, coalesce(error, '') FROM webhook_events WHERE integration_id = $1 AND event_id = 'e_nodata'`, id)
	if !strings.HasPrefix(got, "FAILED ") || !strings.Contains(got, "payload has no data object") {
		t.Fatalf("e_nodata: %q, want FAILED saying payload has no data object", got)
	}
}

// What the earlier rule left in the read models for a webhook without
// "data" (a row keyed by the event id, the event COMPLETED) is named by
// validate as an extra row; gaps fill leaves it (it names rows the log
// does not make, never deletes them), and a rebuild, which folds the log
// with today's rule, drops it and marks the event FAILED.
func TestRowsOfTheEarlierNoDataRuleAreNamedAndRebuiltAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, now, noData := sendWithAndWithoutData(t, e)
	// What the earlier rule made: the event COMPLETED (and counted so in
	// the hourly metrics, which a gaps fill recounts from the audit), and
	// a row with the whole webhook as its data.
	tamper(t, db, id, `UPDATE webhook_events SET status = 'COMPLETED', error = NULL, failed_at = NULL, applied = true,
 processed_at = received_at, processing_time_ms = 0 WHERE integration_id = $1 AND event_id = 'e_nodata'`)
	e.fill(id)
	if _, err := db.Exec(t.Context(), `INSERT INTO transactions (integration_id, id, softpro_created_at, softpro_updated_at, last_event_id, payload)
 VALUES ($1, 'e_nodata', $2, $2, 'e_nodata', $3)`, id, now.Truncate(time.Second).UTC(), string(noData)); err != nil {
		t.Fatal(err)
	}
	onlyExtra := func(when string) {
		t.Helper()
		rep := e.consistency(id)
		if len(rep.Issues) != 1 {
			t.Fatalf("%s: issues %+v, want only the extra row e_nodata", when, rep.Issues)
		}
		if is := rep.Issues[0]; is.Kind != projections.IssueExtra || is.EntityKind != domain.KindTransaction || is.EntityID != "e_nodata" || is.Actual != "e_nodata" {
			t.Fatalf("%s: issue %+v, want the extra row e_nodata", when, is)
		}
	}
	onlyExtra("validate")
	e.fill(id)
	onlyExtra("after gaps fill") // named, not deleted
	e.rebuildAndWait(nil, 90*time.Second)
	if got := queryString(t, db, `SELECT string_agg(id, ',') FROM transactions WHERE integration_id = $1`, id); got != "txn_1" {
		t.Errorf("after rebuild: transactions %q, want txn_1", got)
	}
	if got := queryString(t, db, `SELECT status, coalesce(error, '') FROM webhook_events WHERE integration_id = $1 AND event_id = 'e_nodata'`, id); !strings.HasPrefix(got, "FAILED ") || !strings.Contains(got, "payload has no data object") {
		t.Errorf("after rebuild: e_nodata %q, want FAILED saying payload has no data object", got)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Errorf("after rebuild: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/postgres"
)

// TestEventsDateBoundsAreInclusive projects events received at chosen
// microseconds (through the projector, as the stats fixture does): a row
// received exactly at startDate or endDate is listed and counted, one a
// microsecond outside is not, and a row received exactly on an hour
// boundary inside the range is counted once, whether the total comes from
// the hourly metrics or from the audit. The status filter's totals add up
// the same way, SKIPPED included.
func TestEventsDateBoundsAreInclusive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	store := postgres.NewProjectionStore(e.App.Pool())
	hour := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	lo := hour.Add(-20*time.Minute + 250*time.Microsecond)
	hi := hour.Add(2*time.Hour + 10*time.Minute + 750*time.Microsecond)
	fx := fixtureProjector{t: t, store: store}
	project := func(id string, typ domain.EventType, received time.Time, fail bool) {
		t.Helper()
		fx.project(a, id, typ, received, 10*time.Millisecond, fail)
	}
	project("before", domain.TaskCreated, lo.Add(-time.Microsecond), false)
	project("first", domain.TaskCreated, lo, true)
	project("edge1", domain.TaskCreated, hour, false)
	project("mid", domain.TaskCreated, hour.Add(65*time.Minute), false)
	project("edge2", "survey.sent", hour.Add(2*time.Hour), false)
	project("last", domain.TaskCreated, hi, false)
	project("after", domain.TaskCreated, hi.Add(time.Microsecond), false)

	q := func(start, end time.Time) string {
		return "integrationId=" + a + "&startDate=" + url.QueryEscape(start.Format(time.RFC3339Nano)) +
			"&endDate=" + url.QueryEscape(end.Format(time.RFC3339Nano))
	}
	tests := []struct {
		name, query, want string
	}{
		{"both bounds hit a row", q(lo, hi), "last,edge2,mid,edge1,first"},
		{"start a microsecond later", q(lo.Add(time.Microsecond), hi), "last,edge2,mid,edge1"},
		{"end a microsecond earlier", q(lo, hi.Add(-time.Microsecond)), "edge2,mid,edge1,first"},
		{"start only", "integrationId=" + a + "&startDate=" + url.QueryEscape(lo.Format(time.RFC3339Nano)), "after,last,edge2,mid,edge1,first"},
		{"end only", "integrationId=" + a + "&endDate=" + url.QueryEscape(hi.Format(time.RFC3339Nano)), "last,edge2,mid,edge1,first,before"},
		{"one hour, both ends on its edges", q(hour, hour.Add(2*time.Hour)), "edge2,mid,edge1"},
		{"failed in range", q(lo, hi) + "&status=FAILED", "first"},
		{"skipped in range", q(lo, hi) + "&status=SKIPPED", "edge2"},
		{"completed in range", q(lo, hi) + "&status=COMPLETED", "last,mid,edge1"},
		{"skipped, no range", "integrationId=" + a + "&status=SKIPPED", "edge2"},
		{"type in range", q(lo, hi) + "&eventType=survey.sent", "edge2"},
	}
	for _, tt := range tests {
		p := e.events(tt.query)
		n := len(strings.Split(tt.want, ","))
		if p.ids() != tt.want || p.Pagination.Total != n {
			t.Errorf("%s: got %q total %d, want %q total %d", tt.name, p.ids(), p.Pagination.Total, tt.want, n)
		}
	}
	// Pages of 2 over the range: 2, 2, 1 of the same 5 rows.
	var walked []string
	for page := 1; page <= 3; page++ {
		p := e.events(fmt.Sprintf("%s&limit=2&page=%d", q(lo, hi), page))
		if p.Pagination.Total != 5 || p.Pagination.TotalPages != 3 {
			t.Fatalf("page %d: %+v", page, p.Pagination)
		}
		walked = append(walked, p.ids())
	}
	if got := strings.Join(walked, "|"); got != "last,edge2|mid,edge1|first" {
		t.Fatalf("pages of 2: %s", got)
	}
}

// TestQueryDeletedTransaction: a deleted transaction is left out of the
// list and its detail answers 404 unless includeDeleted=true; its status
// history, documents and tasks stay readable, as they belong to a
// transaction that was seen.
func TestQueryDeletedTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	sends := []struct {
		id   string
		typ  domain.EventType
		data string
	}{
		{"e1", domain.TransactionCreated, `{"id":"txn_1","file_number":"F-1","status":"open"}`},
		{"e2", domain.TransactionCreated, `{"id":"txn_2","file_number":"F-2","status":"open"}`},
		{"e3", domain.TransactionStatusChanged, `{"id":"txn_1","status":"closed"}`},
		{"e4", domain.DocumentUploaded, `{"id":"d1","transaction_id":"txn_1","name":"deed.pdf"}`},
		{"e5", domain.TaskCreated, `{"id":"k1","transaction_id":"txn_1","title":"sign"}`},
	}
	want := map[string]string{}
	for i, s := range sends {
		e.send(signedWebhook(a, sa, event(s.id, s.typ, t0.Add(time.Duration(i)*time.Second), s.data)))
		want[s.id] = "COMPLETED"
	}
	e.waitStatuses(a, want)
	if _, err := e.db().Exec(context.Background(),
		`UPDATE transactions SET deleted = true, deleted_at = now() WHERE integration_id = $1 AND id = 'txn_1'`, a); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/integrations/softpro/" + a + "/transactions"
	if status, raw := e.call(http.MethodGet, base+"/txn_1", e.analystToken(), nil); status != http.StatusNotFound {
		t.Fatalf("deleted transaction: %d %s, want 404", status, raw)
	}
	status, raw := e.call(http.MethodGet, base+"/txn_1?includeDeleted=true", e.analystToken(), nil)
	var one struct{ Transaction map[string]any }
	if status != http.StatusOK {
		t.Fatalf("deleted transaction with includeDeleted: %d %s", status, raw)
	}
	if apiData(t, raw, &one); one.Transaction["id"] != "txn_1" || one.Transaction["deleted"] != true || one.Transaction["deletedAt"] == nil {
		t.Fatalf("deleted transaction with includeDeleted: %v", one.Transaction)
	}
	for _, tt := range []struct{ path, want string }{
		{"", "txn_2"},
		{"?includeDeleted=true", "txn_2,txn_1"},
		{"?includeDeleted=false", "txn_2"},
		{"/txn_1/documents", "d1"},
		{"/txn_1/tasks", "k1"},
		{"/txn_1/status-history", "closed"},
	} {
		if l := e.list(base + tt.path); l.ids() != tt.want {
			t.Errorf("%s: %q, want %q", tt.path, l.ids(), tt.want)
		}
	}
}

// TestQueryKeysetPages: every page of a keyset walk reports the total of
// the whole filter, not of the rows after its cursor; a page that holds
// the last row says there is no more, also when it is full; status history
// walks one change at a time through changes less than a second apart;
// tasks filter by transaction, and dueBefore is strict.
func TestQueryKeysetPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	want := map[string]string{}
	send := func(id string, typ domain.EventType, at time.Time, data string) {
		t.Helper()
		body := []byte(fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":%q,"data":%s}`, id, typ, at.UTC().Format(time.RFC3339Nano), data))
		if r := e.send(signedWebhook(a, sa, body)); r.Status != 200 {
			t.Fatalf("%s: %d %s", id, r.Status, r.Raw)
		}
		want[id] = "COMPLETED"
	}
	for i := 1; i <= 5; i++ {
		send(fmt.Sprintf("t%d", i), domain.TransactionCreated, t0.Add(time.Duration(i)*time.Second), fmt.Sprintf(`{"id":"txn_%d","status":"open"}`, i))
	}
	// Three status changes of txn_1 within one second.
	for i, st := range []string{"a", "b", "c"} {
		send("s"+st, domain.TransactionStatusChanged, t0.Add(10*time.Second+time.Duration(i+1)*250*time.Millisecond), `{"id":"txn_1","status":"`+st+`"}`)
	}
	send("k1", domain.TaskCreated, t0.Add(20*time.Second), `{"id":"k1","transaction_id":"txn_1","title":"x","due_date":"2024-03-01T00:00:00Z"}`)
	send("k2", domain.TaskCreated, t0.Add(21*time.Second), `{"id":"k2","transaction_id":"txn_2","title":"x","due_date":"2024-02-29T23:59:59Z"}`)
	send("k3", domain.TaskCreated, t0.Add(22*time.Second), `{"id":"k3","transaction_id":"txn_1","title":"x"}`)
	e.waitStatuses(a, want)
	if r := e.send(signedWebhook(b, sb, event("x1", domain.TransactionCreated, t0, `{"id":"txn_9","status":"open"}`))); r.Status != 200 {
		t.Fatalf("x1: %d %s", r.Status, r.Raw)
	}
	e.waitStatuses(b, map[string]string{"x1": "COMPLETED"})

	base := "/api/v1/integrations/softpro/" + a
	walk := func(path string, limit, total int) []string {
		t.Helper()
		var pages []string
		next := ""
		for len(pages) < 10 {
			l := e.list(fmt.Sprintf("%s%slimit=%d%s", base, path, limit, next))
			pages = append(pages, l.ids())
			if l.Pagination.Total != total {
				t.Errorf("%s page %d: total %d, want %d", path, len(pages), l.Pagination.Total, total)
			}
			if l.Pagination.HasMore != (l.Pagination.NextCursor != nil) {
				t.Errorf("%s page %d: hasMore %v, nextCursor %v", path, len(pages), l.Pagination.HasMore, l.Pagination.NextCursor)
			}
			if !l.Pagination.HasMore {
				return pages
			}
			next = "&cursor=" + url.QueryEscape(*l.Pagination.NextCursor)
		}
		t.Fatalf("%s: walk does not end", path)
		return nil
	}
	for _, tt := range []struct {
		path         string
		limit, total int
		want         string
	}{
		// txn_1's status changes make it the last updated.
		{"/transactions?", 2, 5, "txn_2,txn_3|txn_4,txn_5|txn_1"},
		{"/transactions?order=desc&", 2, 5, "txn_1,txn_5|txn_4,txn_3|txn_2"},
		{"/transactions?", 5, 5, "txn_2,txn_3,txn_4,txn_5,txn_1"},
		{"/transactions?", 4, 5, "txn_2,txn_3,txn_4,txn_5|txn_1"},
		{"/transactions?status=open&", 2, 4, "txn_2,txn_3|txn_4,txn_5"},
		{"/transactions/txn_1/status-history?", 1, 3, "a|b|c"},
		{"/transactions/txn_1/status-history?", 3, 3, "a,b,c"},
		{"/transactions/txn_1/status-history?", 2, 3, "a,b|c"},
	} {
		if got := strings.Join(walk(tt.path, tt.limit, tt.total), "|"); got != tt.want {
			t.Errorf("%s limit %d: %s, want %s", tt.path, tt.limit, got, tt.want)
		}
	}
	for _, tt := range []struct{ path, want string }{
		{"/tasks?transactionId=txn_1", "k1,k3"},
		{"/tasks?transactionId=txn_2", "k2"},
		{"/transactions/txn_2/tasks", "k2"},
		{"/tasks?dueBefore=2024-03-01T00:00:00Z", "k2"},
		{"/tasks?dueBefore=2024-03-01T00:00:01Z", "k1,k2"},
	} {
		n := len(strings.Split(tt.want, ","))
		if l := e.list(base + tt.path); l.ids() != tt.want || l.Pagination.Total != n {
			t.Errorf("%s: %q total %d, want %q", tt.path, l.ids(), l.Pagination.Total, tt.want)
		}
	}
}

// TestRetryOfASharedEventID: when two integrations' events share a
// SoftPro event id, a retry must say which (409 AMBIGUOUS_EVENT_ID
// otherwise); integrationId or the row id retries that one only.
func TestRetryOfASharedEventID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	now := time.Now()
	e.send(signedWebhook(a, sa, event("evt_dup", domain.DocumentUploaded, now, `{"name":"no id"}`)))
	e.send(signedWebhook(b, sb, event("evt_dup", domain.DocumentUploaded, now, `{"name":"no id"}`)))
	e.waitStatuses(a, map[string]string{"evt_dup": "FAILED"})
	e.waitStatuses(b, map[string]string{"evt_dup": "FAILED"})
	retry := func(ref string) (int, []byte) {
		return e.call(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry/"+ref, e.Token, nil)
	}
	status, raw := retry("evt_dup")
	if code, _ := errCode(raw); status != http.StatusConflict || code != "AMBIGUOUS_EVENT_ID" {
		t.Fatalf("retry without integrationId: %d %s", status, raw)
	}
	status, raw = retry("evt_dup?integrationId=" + b)
	var r struct{ EventID, RowID, IntegrationID string }
	if status != http.StatusOK {
		t.Fatalf("retry of b's event: %d %s", status, raw)
	}
	if apiData(t, raw, &r); r.EventID != "evt_dup" || r.IntegrationID != b {
		t.Fatalf("retry of b's event answered %s", raw)
	}
	// It fails again (its payload can never project).
	eventually(t, 30*time.Second, func() string {
		if d := e.eventDetail("evt_dup?integrationId=" + b); d.Status != "FAILED" || d.RetryCount != 1 {
			return fmt.Sprintf("b's event: %s, %d retries", d.Status, d.RetryCount)
		}
		return ""
	})
	da := e.eventDetail("evt_dup?integrationId=" + a)
	if da.Status != "FAILED" || da.RetryCount != 0 {
		t.Fatalf("a's event was retried: %+v", da)
	}
	// By its row id, a's event is retried without naming the integration.
	status, raw = retry(da.RowID)
	if status != http.StatusOK {
		t.Fatalf("retry by row id: %d %s", status, raw)
	}
	if apiData(t, raw, &r); r.IntegrationID != a || r.RowID != da.RowID {
		t.Fatalf("retry by row id answered %s", raw)
	}
	eventually(t, 30*time.Second, func() string {
		if d := e.eventDetail(da.RowID); d.Status != "FAILED" || d.RetryCount != 1 {
			return fmt.Sprintf("a's event: %s, %d retries", d.Status, d.RetryCount)
		}
		return ""
	})
	retried := map[string]int{}
	for _, rec := range e.records(domain.TopicDocuments) {
		if rec.Envelope.Source == domain.SourceRetry {
			retried[rec.Envelope.IntegrationID]++
		}
	}
	if retried[a] != 1 || retried[b] != 1 || len(retried) != 2 {
		t.Fatalf("retry records per integration: %v", retried)
	}
}

// TestQueryUnknownRoleRefusedEverywhere: a validly signed token whose role
// is neither admin nor analyst is refused (403) on every /api/v1 request,
// also one no route answers, before any route is looked up; an analyst
// there is told 404.
func TestQueryUnknownRoleRefusedEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	badRole, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "role": "root",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(e.Cfg.JWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/api/v1/integrations/softpro/" + a + "/closings",
		"/api/v1/integrations/softpro/webhooks/nothing",
		"/api/v1/nothing",
	} {
		if status, raw := e.do(http.MethodGet, path, badRole, nil); status != http.StatusForbidden {
			t.Errorf("GET %s with role root: %d %s, want 403", path, status, raw)
		}
		if status, raw := e.do(http.MethodGet, path, e.analystToken(), nil); status != http.StatusNotFound {
			t.Errorf("GET %s as analyst: %d %s, want 404", path, status, raw)
		}
	}
}

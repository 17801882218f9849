package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// wantBadParam asserts a 400 BAD_REQUEST whose message names param, as
// documented.
func (e *Env) wantBadParam(path, param string) {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, path, e.Token, nil)
	code, msg := errCode(raw)
	if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, param) {
		e.t.Errorf("GET %s: %d %s, want 400 naming %s", path, status, raw, param)
		return
	}
	e.checkContract(http.MethodGet, path, status, raw)
}

// TestEventsPageBeyondAnyOffset: a page number whose offset does not fit
// in 64 bits is refused like any other page too far, not wrapped around
// into a negative offset.
func TestEventsPageBeyondAnyOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, q := range []string{
		"page=9223372036854775807",
		"page=9223372036854775807&limit=500",
		"page=4611686018427387904&limit=4",
		"page=4294967297&limit=1",
	} {
		e.wantBadParam("/api/v1/integrations/softpro/webhooks/events?"+q, "page")
	}
}

// TestQueryTextPostgresCannotHold: a NUL character or bytes that are not
// UTF-8 in a query parameter (a filter, or the integrationId that
// disambiguates an event id) answer 400 naming it; in an id of the path
// they name nothing (404, or an empty list of an unknown integration). The
// database never sees them, so none of these is a 500.
func TestQueryTextPostgresCannotHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	now := time.Now()
	e.send(signedWebhook(a, sa, event("evt_1", domain.TransactionCreated, now, `{"id":"txn_1","status":"open"}`)))
	e.waitStatuses(a, map[string]string{"evt_1": "COMPLETED"})
	base := "/api/v1/integrations/softpro/"
	cursor := func(key, id string) string { return url.QueryEscape(projections.Cursor{Key: key, ID: id}.Encode()) }
	for _, bad := range []string{"%00", "%FF", "a%00b", "%C3%28"} {
		for _, tc := range []struct{ path, param string }{
			{base + "webhooks/events?eventType=" + bad, "eventType"},
			{base + "webhooks/events?integrationId=" + bad, "integrationId"},
			{base + "webhooks/stats?integrationId=" + bad, "integrationId"},
			{base + "webhooks/events/evt_1?integrationId=" + bad, "integrationId"},
			{base + a + "/transactions?status=" + bad, "status"},
			{base + a + "/transactions?fileNumber=" + bad, "fileNumber"},
			{base + a + "/contacts?name=" + bad, "name"},
			{base + a + "/contacts?email=" + bad, "email"},
			{base + a + "/documents?transactionId=" + bad, "transactionId"},
			{base + a + "/tasks?status=" + bad, "status"},
			{base + a + "/tasks?transactionId=" + bad, "transactionId"},
		} {
			e.wantBadParam(tc.path, tc.param)
		}
	}
	for _, c := range []struct{ key, id string }{{"2024-01-01T00:00:00Z\x00", "txn_1"}, {"2024-01-01T00:00:00Z", "txn\x00"}} {
		e.wantBadParam(base+a+"/transactions?cursor="+cursor(c.key, c.id), "cursor")
		e.wantBadParam(base+a+"/transactions/txn_1/status-history?cursor="+cursor(c.key, c.id), "cursor")
	}
	for _, bad := range []string{"%00", "%FF", "txn%00"} {
		for _, path := range []string{
			base + "webhooks/events/" + bad,
			base + a + "/transactions/" + bad,
			base + a + "/transactions/" + bad + "/status-history",
			base + a + "/transactions/" + bad + "/documents",
			base + bad + "/transactions/txn_1",
		} {
			status, raw := e.do(http.MethodGet, path, e.Token, nil)
			if code, _ := errCode(raw); status != http.StatusNotFound || code != "NOT_FOUND" {
				t.Errorf("GET %s: %d %s, want 404", path, status, raw)
				continue
			}
			e.checkContract(http.MethodGet, path, status, raw)
		}
		for _, kind := range []string{"transactions", "contacts", "documents", "tasks"} {
			path := base + bad + "/" + kind
			status, raw := e.do(http.MethodGet, path, e.Token, nil)
			if status != http.StatusOK {
				t.Errorf("GET %s: %d %s, want an empty list", path, status, raw)
				continue
			}
			e.checkContract(http.MethodGet, path, status, raw)
			var l entityList
			apiData(t, raw, &l)
			if len(l.rows()) != 0 || l.Pagination.Total != 0 {
				t.Errorf("GET %s: %s, want an empty list", path, raw)
			}
		}
	}
}

// TestRetryBatchIDsPostgresCannotHold: event ids with a NUL character
// cannot name an event: in a batch's body they are refused with 400 naming
// the field; in the path they name nothing (404); an integrationId
// parameter Postgres cannot hold is refused with 400.
func TestRetryBatchIDsPostgresCannotHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	path := "/api/v1/integrations/softpro/webhooks/retry-batch"
	status, raw := e.do(http.MethodPost, path, e.Token, map[string]any{"integrationId": a, "eventIds": []string{"evt\x00", "\x00"}})
	if code, msg := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "eventIds[0]") {
		t.Fatalf("POST %s: %d %s, want 400 naming eventIds[0]", path, status, raw)
	}
	e.checkContract(http.MethodPost, path, status, raw)
	for _, ref := range []string{"evt%00", "evt%00?integrationId=" + a, "%FF"} {
		p := "/api/v1/integrations/softpro/webhooks/retry/" + ref
		status, raw := e.do(http.MethodPost, p, e.Token, nil)
		if status != http.StatusNotFound {
			t.Errorf("POST %s: %d %s, want 404", p, status, raw)
			continue
		}
		e.checkContract(http.MethodPost, p, status, raw)
	}
	// The integrationId parameter is read as every query parameter is.
	p := "/api/v1/integrations/softpro/webhooks/retry/evt_1?integrationId=%00"
	status, raw = e.do(http.MethodPost, p, e.Token, nil)
	if code, msg := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "integrationId") {
		t.Errorf("POST %s: %d %s, want 400 naming integrationId", p, status, raw)
	}
	e.checkContract(http.MethodPost, p, status, raw)
}

// tampered is next, a cursor this API returned, with its key and id
// replaced: what a client editing a cursor sends.
func tampered(t *testing.T, next *string, key, id string) string {
	t.Helper()
	if next == nil {
		t.Fatal("no cursor to tamper with")
	}
	c, err := projections.DecodeCursor(*next)
	if err != nil {
		t.Fatalf("cursor %q: %v", *next, err)
	}
	c.Key, c.ID = key, id
	return url.QueryEscape(c.Encode())
}

// TestCursorOutOfRange: a cursor whose key or id is not one this API
// formats (out of its column's range, in another time zone, with an
// offset Postgres cannot hold, or not a time at all) is not one this API
// returned: 400 naming cursor, never a 500. The cursors it does return
// walk on in every sort.
func TestCursorOutOfRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	now := time.Now()
	e.send(signedWebhook(a, sa, event("evt_1", domain.TransactionCreated, now, `{"id":"txn_1","status":"open"}`)))
	e.send(signedWebhook(a, sa, event("evt_2", domain.TransactionStatusChanged, now, `{"id":"txn_1","status":"closed"}`)))
	e.send(signedWebhook(a, sa, event("evt_3", domain.TransactionStatusChanged, now.Add(time.Second), `{"id":"txn_1","status":"open"}`)))
	e.send(signedWebhook(a, sa, event("evt_4", domain.TransactionCreated, now.Add(2*time.Second), `{"id":"txn_2","status":"open","closing_date":"2024-02-01"}`)))
	e.waitStatuses(a, map[string]string{"evt_1": "COMPLETED", "evt_2": "COMPLETED", "evt_3": "COMPLETED", "evt_4": "COMPLETED"})
	base := "/api/v1/integrations/softpro/" + a + "/transactions"
	history := e.list(base + "/txn_1/status-history?limit=1").Pagination.NextCursor
	for _, c := range []struct{ key, id string }{
		{"2024-01-01T00:00:00Z", "99999999999999999999"},
		{"2024-01-01T00:00:00Z", "1e3"},
		{"300000-01-01T00:00:00Z", "1"},
		{"2024-01-01T25:00:00Z", "1"},
		{"2024-01-01T00:00:00+16:00", "1"},
		{"2024-01-01 00:00:00 Mars/Olympus", "1"},
		{"2024-01-01 00:00:00+00", "1"},
	} {
		e.wantBadParam(base+"/txn_1/status-history?cursor="+tampered(t, history, c.key, c.id), "cursor")
	}
	for _, c := range []struct{ sort, key string }{
		{"updatedAt", "300000-01-01T00:00:00Z"},
		{"updatedAt", "2024-02-30T00:00:00Z"},
		{"updatedAt", "2024-01-01 00:00:00 Mars/Olympus"},
		{"updatedAt", "2024-01-01T00:00:00+16:00"},
		{"updatedAt", "not-a-time"},
		{"closingDate", "99999999-01-01"},
		{"closingDate", "2024-13-01"},
		{"closingDate", "2024-01-01 Foo/Bar"},
		{"closingDate", "0000-01-01"},
	} {
		next := e.list(base + "?limit=1&sort=" + c.sort).Pagination.NextCursor
		e.wantBadParam(base+"?sort="+c.sort+"&cursor="+tampered(t, next, c.key, "txn_1"), "cursor")
	}
	// The cursors this API returns walk on.
	first := e.list(base + "/txn_1/status-history?limit=1")
	if len(first.StatusHistory) != 1 || first.Pagination.NextCursor == nil {
		t.Fatalf("first page: %+v", first)
	}
	second := e.list(base + "/txn_1/status-history?limit=1&cursor=" + url.QueryEscape(*first.Pagination.NextCursor))
	if len(second.StatusHistory) != 1 || second.StatusHistory[0]["eventId"] == first.StatusHistory[0]["eventId"] || second.Pagination.HasMore {
		t.Fatalf("second page: %+v after %+v", second, first)
	}
	// txn_1 was updated first and has no closing date, which sorts last.
	for q, want := range map[string]string{
		"sort=updatedAt": "txn_1,txn_2", "sort=updatedAt&order=desc": "txn_2,txn_1",
		"sort=closingDate": "txn_2,txn_1", "sort=closingDate&order=desc": "txn_1,txn_2",
	} {
		var ids []string
		next := ""
		for range 3 {
			l := e.list(base + "?limit=1&" + q + next)
			ids = append(ids, l.ids())
			if !l.Pagination.HasMore {
				break
			}
			next = "&cursor=" + url.QueryEscape(*l.Pagination.NextCursor)
		}
		if got := strings.Join(ids, ","); got != want {
			t.Errorf("walk %s: %s, want %s", q, got, want)
		}
	}
}

// TestCursorOfAnotherWalk: a cursor continues only the walk that issued
// it. Sent with another sort, order, filter, list or transaction, where
// its key would start the walk at a wrong place (or past the end), it is
// refused with 400 naming cursor.
func TestCursorOfAnotherWalk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	b, _ := e.integration("b", nil)
	now := time.Now()
	e.send(signedWebhook(a, sa, event("evt_1", domain.TransactionCreated, now, `{"id":"txn_1","status":"open","closing_date":"2024-03-01"}`)))
	e.send(signedWebhook(a, sa, event("evt_2", domain.TransactionCreated, now.Add(time.Second), `{"id":"txn_2","status":"open"}`)))
	e.send(signedWebhook(a, sa, event("evt_3", domain.TransactionStatusChanged, now.Add(2*time.Second), `{"id":"txn_1","status":"closed"}`)))
	e.send(signedWebhook(a, sa, event("evt_4", domain.TransactionStatusChanged, now.Add(3*time.Second), `{"id":"txn_1","status":"open"}`)))
	e.send(signedWebhook(a, sa, event("evt_5", domain.DocumentUploaded, now, `{"id":"doc_1","transaction_id":"txn_1"}`)))
	e.send(signedWebhook(a, sa, event("evt_6", domain.DocumentUploaded, now.Add(time.Second), `{"id":"doc_2","transaction_id":"txn_1"}`)))
	e.waitStatuses(a, map[string]string{"evt_1": "COMPLETED", "evt_2": "COMPLETED", "evt_3": "COMPLETED",
		"evt_4": "COMPLETED", "evt_5": "COMPLETED", "evt_6": "COMPLETED"})
	base := "/api/v1/integrations/softpro/"
	next := func(path string) string {
		t.Helper()
		l := e.list(path)
		if l.Pagination.NextCursor == nil {
			t.Fatalf("%s: no next cursor: %+v", path, l)
		}
		return url.QueryEscape(*l.Pagination.NextCursor)
	}
	byUpdate := next(base + a + "/transactions?sort=updatedAt&limit=1")
	byDate := next(base + a + "/transactions?sort=closingDate&limit=1")
	history := next(base + a + "/transactions/txn_1/status-history?limit=1")
	children := next(base + a + "/transactions/txn_1/documents?limit=1")
	for _, path := range []string{
		base + a + "/transactions?sort=closingDate&cursor=" + byUpdate,
		base + a + "/transactions?sort=updatedAt&cursor=" + byDate,
		base + a + "/transactions?order=desc&cursor=" + byUpdate,
		base + a + "/transactions?status=open&cursor=" + byUpdate,
		base + a + "/transactions?includeDeleted=true&cursor=" + byUpdate,
		base + a + "/transactions?closingFrom=2024-01-01&sort=closingDate&cursor=" + byDate,
		base + b + "/transactions?cursor=" + byUpdate,
		base + a + "/contacts?cursor=" + byUpdate,
		base + a + "/documents?cursor=" + children,
		base + a + "/transactions/txn_2/documents?cursor=" + children,
		base + a + "/transactions/txn_2/status-history?cursor=" + history,
		base + a + "/transactions?cursor=" + history,
		base + a + "/transactions/txn_1/status-history?cursor=" + byUpdate,
	} {
		e.wantBadParam(path, "cursor")
	}
	// The same walk goes on, whatever the page size.
	for _, path := range []string{
		base + a + "/transactions?sort=updatedAt&limit=5&cursor=" + byUpdate,
		base + a + "/transactions?limit=1&cursor=" + byUpdate,
		base + a + "/transactions?sort=closingDate&cursor=" + byDate,
		base + a + "/transactions/txn_1/status-history?cursor=" + history,
		base + a + "/transactions/txn_1/documents?cursor=" + children,
	} {
		if l := e.list(path); len(l.rows()) != 1 {
			t.Errorf("%s: %s, want the walk's second row", path, l.ids())
		}
	}
}

// TestIDsWithReservedCharacters: SoftPro ids may hold "/" and other
// characters a client percent-encodes in the path; the event and the
// transaction are found by them.
func TestIDsWithReservedCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	now := time.Now()
	const evt, txn = "evt/2024 #1?%", "txn/2024-001"
	e.send(signedWebhook(a, sa, event(evt, domain.TransactionCreated, now, `{"id":"`+txn+`","status":"open"}`)))
	e.send(signedWebhook(a, sa, event("evt_2", domain.TransactionStatusChanged, now.Add(time.Second), `{"id":"`+txn+`","status":"closed"}`)))
	e.send(signedWebhook(a, sa, event("evt_3", domain.DocumentUploaded, now, `{"id":"doc/1","transaction_id":"`+txn+`"}`)))
	e.waitStatuses(a, map[string]string{evt: "COMPLETED", "evt_2": "COMPLETED", "evt_3": "COMPLETED"})

	// The contract check matches decoded paths, so these requests skip it.
	get := func(path string, v any) {
		t.Helper()
		status, raw := e.do(http.MethodGet, path, e.Token, nil)
		if status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, status, raw)
			return
		}
		apiData(t, raw, v)
	}
	for _, path := range []string{
		"/api/v1/integrations/softpro/webhooks/events/" + url.PathEscape(evt),
		"/api/v1/integrations/softpro/webhooks/events/" + url.PathEscape(evt) + "?integrationId=" + a,
	} {
		var d eventDetail
		if get(path, &d); d.ID != evt {
			t.Errorf("GET %s: %+v", path, d)
		}
	}
	base := "/api/v1/integrations/softpro/" + a + "/transactions/" + url.PathEscape(txn)
	var one struct{ Transaction map[string]any }
	if get(base, &one); one.Transaction["id"] != txn {
		t.Errorf("GET %s: %+v", base, one)
	}
	var l entityList
	if get(base+"/status-history", &l); len(l.StatusHistory) != 1 || l.StatusHistory[0]["eventId"] != "evt_2" {
		t.Errorf("status history of %q: %+v", txn, l)
	}
	l = entityList{}
	if get(base+"/documents", &l); l.ids() != "doc/1" {
		t.Errorf("documents of %q: %q", txn, l.ids())
	}
	// An id without reserved characters is read as it is.
	if d := e.eventDetail("evt_2"); d.ID != "evt_2" {
		t.Errorf("evt_2: %+v", d)
	}

	// A FAILED event whose id holds reserved characters is retried by it.
	const bad = "evt/bad #2"
	e.send(signedWebhook(a, sa, event(bad, domain.DocumentUploaded, now, `{"name":"no id.pdf"}`)))
	e.waitStatuses(a, map[string]string{bad: "FAILED"})
	path := "/api/v1/integrations/softpro/webhooks/retry/" + url.PathEscape(bad) + "?integrationId=" + a
	status, raw := e.do(http.MethodPost, path, e.Token, nil)
	var r struct{ EventID string }
	if status != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, status, raw)
	}
	if apiData(t, raw, &r); r.EventID != bad {
		t.Errorf("POST %s: retried %q", path, r.EventID)
	}
}

// TestClosingRangeReversed: closingTo before closingFrom is refused like
// endDate before startDate, not answered with an empty list.
func TestClosingRangeReversed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	e.send(signedWebhook(a, sa, event("evt_1", domain.TransactionCreated, time.Now(), `{"id":"txn_1","closing_date":"2024-02-01"}`)))
	e.waitStatuses(a, map[string]string{"evt_1": "COMPLETED"})
	base := "/api/v1/integrations/softpro/" + a + "/transactions?"
	e.wantBadParam(base+"closingFrom=2024-02-02&closingTo=2024-02-01", "closingTo")
	if l := e.list(base + "closingFrom=2024-02-01&closingTo=2024-02-01"); l.ids() != "txn_1" {
		t.Fatalf("one-day range: %q", l.ids())
	}
}

// TestClosingDateOfYearZero: Go reads year 0000 as a date, Postgres
// holds none before year 1: such a closingFrom or closingTo is a 400
// naming it (not the cursor, which was not sent, nor a 500).
func TestClosingDateOfYearZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	base := "/api/v1/integrations/softpro/" + a + "/transactions?"
	e.wantBadParam(base+"closingFrom=0000-01-01", "closingFrom")
	e.wantBadParam(base+"closingTo=0000-12-31", "closingTo")
	e.wantBadParam(base+"sort=closingDate&closingFrom=0000-06-01&closingTo=2024-01-01", "closingFrom")
}

// TestEventsEndDateAtTheFirstInstant: an endDate at the first instant of
// year 1 bounds the list like any other (nothing is that old), instead of
// being taken for no bound.
func TestEventsEndDateAtTheFirstInstant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	e.send(signedWebhook(a, sa, event("evt_1", domain.TaskCreated, time.Now(), `{"id":"tsk_1"}`)))
	e.waitStatuses(a, map[string]string{"evt_1": "COMPLETED"})
	if p := e.events("integrationId=" + a); p.Pagination.Total != 1 || len(p.Events) != 1 {
		t.Fatalf("unbounded: %+v", p)
	}
	for _, q := range []string{
		"endDate=0001-01-01T00:00:00Z",
		"endDate=" + url.QueryEscape("0001-01-01T01:00:00+01:00"),
		"startDate=0001-01-01T00:00:00Z&endDate=0001-01-01T00:00:00Z",
	} {
		if p := e.events("integrationId=" + a + "&" + q); p.Pagination.Total != 0 || len(p.Events) != 0 {
			t.Errorf("%s: total %d, %s", q, p.Pagination.Total, p.ids())
		}
	}
}

// TestLimitBeyondInt64IsCapped: a limit too large for any integer type is
// capped at 500 like any other large limit; a negative one is refused.
func TestLimitBeyondInt64IsCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	if p := e.events("limit=99999999999999999999999"); p.Pagination.Limit != 500 {
		t.Errorf("events: limit %d, want 500", p.Pagination.Limit)
	}
	if l := e.list("/api/v1/integrations/softpro/" + a + "/transactions?limit=99999999999999999999999"); l.Pagination.Limit != 500 {
		t.Errorf("transactions: limit %d, want 500", l.Pagination.Limit)
	}
	e.wantBadParam("/api/v1/integrations/softpro/webhooks/events?limit=-99999999999999999999999", "limit")
	e.wantBadParam("/api/v1/integrations/softpro/webhooks/events?limit=1e3", "limit")
}

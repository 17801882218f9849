package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// apiData decodes the data of a successful answer into v.
func apiData(t *testing.T, raw []byte, v any) {
	t.Helper()
	var env struct {
		Success bool
		Data    json.RawMessage
	}
	if err := json.Unmarshal(raw, &env); err != nil || !env.Success {
		t.Fatalf("not a success envelope: %s", raw)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("data: %v: %s", err, raw)
	}
}

// errCode is the error code of an error answer.
func errCode(raw []byte) (code, msg string) {
	var env struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(raw, &env)
	return env.Error.Code, env.Error.Message
}

type eventsPage struct {
	Events []struct {
		ID, RowID, IntegrationID, EventType, Status, Source string
		RetryCount                                          int
		Error                                               *string
		ReceivedAt                                          time.Time
	}
	Pagination struct{ Page, Limit, Total, TotalPages int }
}

func (p eventsPage) ids() string {
	var ids []string
	for _, e := range p.Events {
		ids = append(ids, e.ID)
	}
	return strings.Join(ids, ",")
}

func (e *Env) analystToken() string {
	e.t.Helper()
	tok, err := httpapi.IssueToken([]byte(e.Cfg.JWTSecret), "analyst", httpapi.RoleAnalyst, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *Env) events(query string) eventsPage {
	e.t.Helper()
	status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/events?"+query, e.analystToken(), nil)
	if status != http.StatusOK {
		e.t.Fatalf("events?%s: %d %s", query, status, raw)
	}
	var p eventsPage
	apiData(e.t, raw, &p)
	return p
}

// waitStatuses waits until integration's audit rows have these statuses.
func (e *Env) waitStatuses(integration string, want map[string]string) {
	e.t.Helper()
	db := e.db()
	eventually(e.t, 60*time.Second, func() string {
		got := map[string]string{}
		rows, err := db.Query(context.Background(), `SELECT event_id, status FROM webhook_events WHERE integration_id = $1`, integration)
		if err != nil {
			return err.Error()
		}
		for rows.Next() {
			var id, st string
			_ = rows.Scan(&id, &st)
			got[id] = st
		}
		rows.Close()
		for id, st := range want {
			if got[id] != st {
				return fmt.Sprintf("%s: %s is %q, want %s (all: %v)", integration, id, got[id], st, got)
			}
		}
		return ""
	})
}

func TestEventsListFiltersAndPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.QueueRetryDelayMs = 10 })
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	now := time.Now()
	want := map[string]string{}
	for i := range 7 {
		id := fmt.Sprintf("evt_a%d", i)
		e.send(signedWebhook(a, sa, event(id, domain.TransactionUpdated, now, fmt.Sprintf(`{"id":"txn_%d","status":"open"}`, i))))
		want[id] = "COMPLETED"
	}
	e.send(signedWebhook(a, sa, event("evt_a_task", domain.TaskCreated, now, `{"id":"tsk_1"}`)))
	e.send(signedWebhook(a, sa, event("evt_a_bad", domain.TaskCreated, now, `{"title":"no id"}`)))
	want["evt_a_task"], want["evt_a_bad"] = "COMPLETED", "FAILED"
	e.waitStatuses(a, want)
	e.send(signedWebhook(b, sb, event("evt_a0", domain.ContactCreated, now, `{"id":"c1"}`)))
	e.waitStatuses(b, map[string]string{"evt_a0": "COMPLETED"})

	all := e.events("")
	if all.Pagination.Total != 10 || len(all.Events) != 10 || all.Pagination.Page != 1 || all.Pagination.Limit != 50 || all.Pagination.TotalPages != 1 {
		t.Fatalf("unfiltered: %+v", all.Pagination)
	}
	for i := 1; i < len(all.Events); i++ {
		if all.Events[i].ReceivedAt.After(all.Events[i-1].ReceivedAt) {
			t.Fatalf("not newest first: %s", all.ids())
		}
	}
	tests := []struct {
		name, query string
		total       int
	}{
		{"integration", "integrationId=" + b, 1},
		{"event type", "eventType=task.created", 2},
		{"status failed", "status=FAILED", 1},
		{"status completed", "status=COMPLETED&integrationId=" + a, 8},
		{"status received", "status=RECEIVED", 0},
		{"type and integration", "eventType=contact.created&integrationId=" + a, 0},
		{"start date", "startDate=" + url.QueryEscape(now.Add(-time.Hour).UTC().Format(time.RFC3339)), 10},
		{"start date in the future", "startDate=" + now.Add(48*time.Hour).UTC().Format(time.DateOnly), 0},
		{"end date in the past", "endDate=" + now.Add(-48*time.Hour).UTC().Format(time.DateOnly), 0},
		{"end date today, whole day", "endDate=" + now.UTC().Format(time.DateOnly), 10},
		{"date range", "startDate=" + now.Add(-24*time.Hour).UTC().Format(time.DateOnly) + "&endDate=" + url.QueryEscape(now.Add(time.Minute).UTC().Format(time.RFC3339)), 10},
	}
	for _, tt := range tests {
		p := e.events(tt.query)
		if p.Pagination.Total != tt.total || len(p.Events) != min(tt.total, 50) {
			t.Errorf("%s: total %d, %d events, want %d", tt.name, p.Pagination.Total, len(p.Events), tt.total)
		}
	}
	if p := e.events("status=FAILED"); p.Events[0].ID != "evt_a_bad" || p.Events[0].Error == nil {
		t.Errorf("failed event: %+v", p.Events)
	}

	// Pages of 4: 4, 4, 2, then an empty page past the end.
	var walked []string
	for page := 1; page <= 4; page++ {
		p := e.events(fmt.Sprintf("limit=4&page=%d", page))
		if p.Pagination.Total != 10 || p.Pagination.TotalPages != 3 || p.Pagination.Page != page {
			t.Fatalf("page %d: %+v", page, p.Pagination)
		}
		wantLen := map[int]int{1: 4, 2: 4, 3: 2, 4: 0}[page]
		if len(p.Events) != wantLen {
			t.Fatalf("page %d: %d events", page, len(p.Events))
		}
		for _, ev := range p.Events {
			walked = append(walked, ev.RowID)
		}
	}
	seen := map[string]bool{}
	for _, id := range walked {
		if seen[id] {
			t.Fatalf("row %s on two pages", id)
		}
		seen[id] = true
	}
	if len(seen) != 10 {
		t.Fatalf("pages hold %d rows", len(seen))
	}
	if p := e.events("limit=100000"); p.Pagination.Limit != 500 || p.Pagination.TotalPages != 1 {
		t.Fatalf("limit cap: %+v", p.Pagination)
	}

	for _, bad := range []struct{ query, param string }{
		{"page=0", "page"}, {"page=x", "page"}, {"limit=0", "limit"}, {"limit=-5", "limit"}, {"limit=ten", "limit"},
		{"status=DONE", "status"}, {"startDate=yesterday", "startDate"}, {"endDate=2024-13-01", "endDate"},
		{"startDate=2024-02-02&endDate=2024-02-01", "endDate"},
	} {
		status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/events?"+bad.query, e.Token, nil)
		code, msg := errCode(raw)
		if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, bad.param) {
			t.Errorf("%s: %d %s", bad.query, status, raw)
		}
	}
}

type eventDetail struct {
	ID, RowID, IntegrationID, EventType, Status string
	RetryCount                                  int
	LastRetryAt                                 *time.Time
	Payload                                     map[string]any
	Log                                         struct {
		Topic     string
		Partition int32
		Offset    int64
	}
	Integration *struct {
		ID, OrganizationID string
		Active             bool
	}
}

func (e *Env) eventDetail(ref string) eventDetail {
	e.t.Helper()
	status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/events/"+ref, e.analystToken(), nil)
	if status != http.StatusOK {
		e.t.Fatalf("event %s: %d %s", ref, status, raw)
	}
	var d eventDetail
	apiData(e.t, raw, &d)
	return d
}

func TestEventDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	now := time.Now()
	e.send(signedWebhook(a, sa, event("evt_one", domain.TransactionUpdated, now, `{"id":"txn_789","file_number":"2024-001"}`)))
	e.send(signedWebhook(a, sa, event("evt_shared", domain.TaskCreated, now, `{"id":"t"}`)))
	e.send(signedWebhook(b, sb, event("evt_shared", domain.TaskCreated, now, `{"id":"t"}`)))
	e.waitStatuses(a, map[string]string{"evt_one": "COMPLETED", "evt_shared": "COMPLETED"})
	e.waitStatuses(b, map[string]string{"evt_shared": "COMPLETED"})

	d := e.eventDetail("evt_one")
	data, _ := d.Payload["data"].(map[string]any)
	if d.ID != "evt_one" || d.IntegrationID != a || d.Status != "COMPLETED" || d.EventType != "transaction.updated" ||
		data["file_number"] != "2024-001" || d.Integration == nil || d.Integration.ID != a || d.Integration.OrganizationID != "org-"+e.ns ||
		!d.Integration.Active || d.Log.Topic != domain.TopicTransactions {
		t.Fatalf("detail: %+v", d)
	}
	if byRow := e.eventDetail(d.RowID); byRow.ID != "evt_one" || byRow.RowID != d.RowID {
		t.Fatalf("by row id: %+v", byRow)
	}
	status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/events/evt_shared", e.Token, nil)
	if code, _ := errCode(raw); status != http.StatusConflict || code != "AMBIGUOUS_EVENT_ID" {
		t.Fatalf("shared id: %d %s", status, raw)
	}
	if d := e.eventDetail("evt_shared?integrationId=" + b); d.IntegrationID != b {
		t.Fatalf("disambiguated: %+v", d)
	}
	// integrationId is read as the lists read it: trimmed, and 400 when it
	// is text Postgres cannot hold; the retry of one event alike.
	if d := e.eventDetail("evt_shared?integrationId=%20" + b + "%20"); d.IntegrationID != b {
		t.Fatalf("disambiguated with spaces: %+v", d)
	}
	for _, bad := range []string{"%00", "%ff"} {
		for _, call := range []struct{ method, path string }{
			{http.MethodGet, "/api/v1/integrations/softpro/webhooks/events/evt_shared?integrationId=" + bad},
			{http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry/evt_shared?integrationId=" + bad},
		} {
			status, raw := e.call(call.method, call.path, e.Token, nil)
			if code, _ := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" {
				t.Errorf("%s %s: %d %s", call.method, call.path, status, raw)
			}
		}
	}
	for _, ref := range []string{"evt_nope", "00000000-0000-0000-0000-000000000000", "evt_one?integrationId=" + b} {
		if status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/events/"+ref, e.Token, nil); status != http.StatusNotFound {
			t.Errorf("%s: %d %s", ref, status, raw)
		}
	}
}

// poisonTransactions makes projecting a transaction whose file number is
// POISON fail in the database, as a bug in a projection would, until heal
// is called.
func poisonTransactions(t *testing.T, e *Env) (heal func()) {
	t.Helper()
	db := e.db()
	if _, err := db.Exec(context.Background(), `ALTER TABLE transactions ADD CONSTRAINT test_poison CHECK (file_number <> 'POISON')`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := db.Exec(context.Background(), `ALTER TABLE transactions DROP CONSTRAINT test_poison`); err != nil {
			t.Fatal(err)
		}
	}
}

func fastRetries(c *appConfig) { c.QueueRetryDelayMs, c.QueueMaxRetries = 10, 2 }

func TestRetryFailedEventProjectsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	heal := poisonTransactions(t, e)
	a, sa := e.integration("a", nil)
	now := time.Now()
	e.send(signedWebhook(a, sa, event("evt_poison", domain.TransactionCreated, now, `{"id":"txn_p","file_number":"POISON","status":"open"}`)))
	e.send(signedWebhook(a, sa, event("evt_fine", domain.TransactionCreated, now, `{"id":"txn_f","file_number":"F-1"}`)))
	e.waitStatuses(a, map[string]string{"evt_poison": "FAILED", "evt_fine": "COMPLETED"})
	if n := len(e.records(domain.TopicPoison)); n != 1 {
		t.Fatalf("poison topic holds %d records", n)
	}
	retry := func(ref string) (int, []byte) {
		return e.call(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry/"+ref, e.Token, nil)
	}
	if status, raw := retry("evt_fine"); status != http.StatusConflict {
		t.Fatalf("retry of a COMPLETED event: %d %s", status, raw)
	} else if code, _ := errCode(raw); code != "EVENT_NOT_FAILED" {
		t.Fatalf("code %s", code)
	}
	if status, _ := retry("evt_unknown"); status != http.StatusNotFound {
		t.Fatalf("retry of an unknown event: %d", status)
	}
	analyst := e.analystToken()
	if status, _ := e.call(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry/evt_poison", analyst, nil); status != http.StatusForbidden {
		t.Fatalf("analyst retry: %d", status)
	}

	heal()
	// Two retries at once: one re-appends, the other is told 409.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	bodies := make([][]byte, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], bodies[i] = e.do(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry/evt_poison", e.Token, nil)
		}()
	}
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		e.checkContract(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry/evt_poison", s, bodies[i])
		switch s {
		case http.StatusOK:
			ok++
			var d struct{ EventID, Message string }
			apiData(t, bodies[i], &d)
			if d.EventID != "evt_poison" || d.Message != "Event retry queued" {
				t.Fatalf("retry answer %s", bodies[i])
			}
		case http.StatusConflict:
		default:
			t.Fatalf("concurrent retry: %d %s", s, bodies[i])
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 2 concurrent retries re-appended, want 1: %v", ok, statuses)
	}
	e.waitStatuses(a, map[string]string{"evt_poison": "COMPLETED"})
	if status, _ := retry("evt_poison"); status != http.StatusConflict {
		t.Fatalf("retry after completion: %d", status)
	}

	// On the log: the original and exactly one retry, carrying the attempt.
	var copies []string
	for _, r := range e.records(domain.TopicTransactions) {
		if r.Envelope.EventID == "evt_poison" {
			copies = append(copies, fmt.Sprintf("%s/%d", r.Envelope.Source, r.Envelope.Attempt))
		}
	}
	if strings.Join(copies, ",") != "webhook/0,retry/1" {
		t.Fatalf("log copies of evt_poison: %v", copies)
	}
	db := e.db()
	if got := queryString(t, db, `SELECT file_number, last_event_id FROM transactions WHERE integration_id=$1 AND id='txn_p'`, a); got != "POISON evt_poison" {
		t.Fatalf("transaction: %q", got)
	}
	d := e.eventDetail("evt_poison")
	if d.Status != "COMPLETED" || d.RetryCount < 1 {
		t.Fatalf("detail after retry: %+v", d)
	}
	if got := queryString(t, db, `SELECT sum(failed)::bigint, sum(completed)::bigint, sum(received)::bigint FROM integration_metrics_hourly WHERE integration_id=$1`, a); got != "0 2 2" {
		t.Fatalf("metrics after retry (failed completed received): %s", got)
	}
	assertTotalsMatch(t, db)
}

func TestRetryBatchCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	now := time.Now()
	want := map[string]string{}
	for i := range 5 {
		id := fmt.Sprintf("evt_bad%d", i)
		e.send(signedWebhook(a, sa, event(id, domain.DocumentUploaded, now, `{"name":"no id"}`)))
		want[id] = "FAILED"
	}
	e.send(signedWebhook(a, sa, event("evt_ok", domain.DocumentUploaded, now, `{"id":"d1"}`)))
	want["evt_ok"] = "COMPLETED"
	e.send(signedWebhook(b, sb, event("evt_bad0", domain.DocumentUploaded, now, `{"name":"no id"}`)))
	e.waitStatuses(a, want)
	e.waitStatuses(b, map[string]string{"evt_bad0": "FAILED"})

	batch := func(token string, body any) (int, []byte) {
		return e.call(http.MethodPost, "/api/v1/integrations/softpro/webhooks/retry-batch", token, body)
	}
	count := func(raw []byte) int {
		var d struct {
			RetriedCount int
			Message      string
		}
		apiData(t, raw, &d)
		if d.Message != fmt.Sprintf("%d events queued for retry", d.RetriedCount) {
			t.Fatalf("message %q", d.Message)
		}
		return d.RetriedCount
	}
	// Two FAILED ones named, plus a COMPLETED one and an unknown one.
	status, raw := batch(e.Token, map[string]any{"integrationId": a, "eventIds": []string{"evt_bad0", "evt_bad1", "evt_ok", "evt_nope"}})
	if status != 200 || count(raw) != 2 {
		t.Fatalf("named batch: %d %s", status, raw)
	}
	// They fail again (their payload can never project).
	e.waitStatuses(a, want)
	status, raw = batch(e.Token, map[string]any{"integrationId": a})
	if status != 200 || count(raw) != 5 {
		t.Fatalf("all failed: %d %s", status, raw)
	}
	e.waitStatuses(a, want)
	e.waitStatuses(b, map[string]string{"evt_bad0": "FAILED"})
	if d := e.eventDetail("evt_bad0?integrationId=" + b); d.RetryCount != 0 {
		t.Fatalf("the other integration's event was retried: %+v", d)
	}
	// A retry that failed again keeps the time it was retried.
	if d := e.eventDetail("evt_bad0?integrationId=" + a); d.RetryCount != 2 || d.LastRetryAt == nil || d.LastRetryAt.Before(now) {
		t.Fatalf("evt_bad0 retry count %d, last retried %v; want 2, after %v", d.RetryCount, d.LastRetryAt, now)
	}
	var retries int
	for _, r := range e.records(domain.TopicDocuments) {
		if r.Envelope.Source == domain.SourceRetry {
			retries++
		}
	}
	if retries != 7 {
		t.Fatalf("%d retry records on the log, want 7", retries)
	}
	for _, bad := range []struct {
		token string
		body  any
		want  int
	}{
		{e.Token, map[string]any{}, 400},
		{e.Token, map[string]any{"integrationId": a, "eventIds": []string{}}, 400},
		{e.Token, map[string]any{"integrationId": a, "extra": 1}, 400},
		{e.Token, map[string]any{"integrationId": e.id("nope")}, 404},
		{e.analystToken(), map[string]any{"integrationId": a}, 403},
		{"", map[string]any{"integrationId": a}, 401},
	} {
		if status, raw := batch(bad.token, bad.body); status != bad.want {
			t.Errorf("%v: %d %s, want %d", bad.body, status, raw, bad.want)
		}
	}
	if status, raw := batch(e.Token, map[string]any{"integrationId": b, "eventIds": []string{"evt_ok"}}); status != 200 || count(raw) != 0 {
		t.Fatalf("nothing to retry: %d %s", status, raw)
	}
}

// fixtureProjector applies (or fails, as the poison queue would) synthetic
// events straight through a projector, each received at a chosen instant
// and completed took later.
type fixtureProjector struct {
	t     *testing.T
	store projections.Store
	off   int64
}

func (f *fixtureProjector) project(integration, id string, typ domain.EventType, received time.Time, took time.Duration, fail bool) {
	f.t.Helper()
	p := projections.NewProjector("fixture", f.store, func() time.Time { return received.Add(took) })
	env := domain.Envelope{Schema: domain.SchemaV1, EventID: id, IntegrationID: integration, Type: typ, OccurredAt: received,
		ReceivedAt: received, Source: domain.SourceWebhook, Payload: json.RawMessage(`{"data":{"id":"x-` + id + `"}}`)}
	rec := projections.Record{Partition: projections.Partition{Topic: typ.Topic(), Partition: 0}, Offset: f.off, Envelope: env}
	f.off++
	var err error
	if fail {
		err = p.Fail(context.Background(), projections.Failure{Record: rec, Origin: rec.Partition, OriginOffset: rec.Offset, Reason: "boom", Attempts: 5})
	} else {
		_, err = p.Apply(context.Background(), rec)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestStatsHandCounted projects a fixture through the projector (events
// received over 20 days, so whole hours come from the hourly metrics and
// partial ones from the audit) and checks the figures counted by hand.
func TestStatsHandCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	b, _ := e.integration("b", nil)
	store := postgres.NewProjectionStore(e.App.Pool())
	now := time.Now().UTC()
	fx := fixtureProjector{t: t, store: store}
	project := func(integration, id string, typ domain.EventType, age, took time.Duration, fail bool) {
		fx.project(integration, id, typ, now.Add(-age), took, fail)
	}
	ms := time.Millisecond
	// Integration a, last hour: 3 completed (100, 200, 300 ms), 1 failed,
	// 1 skipped (unknown type).
	project(a, "h1", domain.TransactionUpdated, 10*time.Minute, 100*ms, false)
	project(a, "h2", domain.TransactionUpdated, 20*time.Minute, 200*ms, false)
	project(a, "h3", domain.DocumentUploaded, 30*time.Minute, 300*ms, false)
	project(a, "h4", domain.TaskCreated, 40*time.Minute, 0, true)
	project(a, "h5", "survey.sent", 50*time.Minute, 0, false)
	// Earlier that day: 2 completed (1000 ms each) and 1 failed.
	project(a, "d1", domain.ContactCreated, 5*time.Hour, 1000*ms, false)
	project(a, "d2", domain.ContactCreated, 23*time.Hour, 1000*ms, false)
	project(a, "d3", domain.ContactCreated, 23*time.Hour, 0, true)
	// Days ago: 6 days (1 completed, 500 ms), 20 days (2 failed).
	project(a, "w1", domain.TaskCreated, 6*24*time.Hour, 500*ms, false)
	project(a, "m1", domain.TaskCreated, 20*24*time.Hour, 0, true)
	project(a, "m2", domain.TaskCreated, 20*24*time.Hour+time.Minute, 0, true)
	// Integration b, last hour: 1 completed (50 ms).
	project(b, "b1", domain.TransactionUpdated, 15*time.Minute, 50*ms, false)

	type stats struct {
		Period, StartDate, EndDate string
		IntegrationID              *string
		WebhookStats               struct {
			TotalEvents, Received, Completed, Failed, Processing, Skipped int64
			SuccessRate, FailureRate                                      float64
			AvgProcessingTimeMs                                           int64
		}
		QueueStats []struct {
			QueueName                          string
			Waiting, Active, Completed, Failed int64
			Delayed                            int64
			Paused                             bool
		}
	}
	get := func(query string) stats {
		status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats?"+query, e.analystToken(), nil)
		if status != 200 {
			t.Fatalf("stats?%s: %d %s", query, status, raw)
		}
		var s stats
		apiData(t, raw, &s)
		return s
	}
	type want struct {
		total, completed, failed, skipped int64
		success, failure                  float64
		avg                               int64
	}
	tests := []struct {
		query string
		want  want
	}{
		// 5 events: 3 completed + 1 skipped succeed (80%), 1 failed; avg (100+200+300)/3.
		{"period=1h&integrationId=" + a, want{5, 3, 1, 1, 80, 20, 200}},
		// + d1, d2, d3: 8 events, 5 completed, 2 failed; avg 2600/5 = 520.
		{"integrationId=" + a, want{8, 5, 2, 1, 75, 25, 520}},
		// + w1: 9 events, 6 completed; avg 3100/6 = 516.67 → 517.
		{"period=7d&integrationId=" + a, want{9, 6, 2, 1, 77.78, 22.22, 517}},
		// + m1, m2: 11 events, 4 failed: 7/11 = 63.64%, 36.36%.
		{"period=30d&integrationId=" + a, want{11, 6, 4, 1, 63.64, 36.36, 517}},
		// Both integrations, last hour: 6 events, 4 completed (avg 650/4 = 162.5 → 163).
		{"period=1h", want{6, 4, 1, 1, 83.33, 16.67, 163}},
		// Both integrations, 30 days (whole hours come from the all-integration
		// totals): 12 events, 7 completed, 4 failed; avg 3150/7 = 450.
		{"period=30d", want{12, 7, 4, 1, 66.67, 33.33, 450}},
		{"period=1h&integrationId=" + e.id("none"), want{0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		s := get(tt.query)
		ws := s.WebhookStats
		got := want{ws.TotalEvents, ws.Completed, ws.Failed, ws.Skipped, ws.SuccessRate, ws.FailureRate, ws.AvgProcessingTimeMs}
		if got != tt.want || ws.Received != ws.TotalEvents || ws.Processing != 0 {
			t.Errorf("%s: got %+v, want %+v", tt.query, ws, tt.want)
		}
	}
	s := get("period=30d&integrationId=" + a)
	if s.Period != "30d" || s.IntegrationID == nil || *s.IntegrationID != a {
		t.Fatalf("stats head: %+v", s)
	}
	start, _ := time.Parse(time.RFC3339, s.StartDate)
	end, _ := time.Parse(time.RFC3339, s.EndDate)
	if d := end.Sub(start); d < 30*24*time.Hour-time.Second || d > 30*24*time.Hour+time.Second {
		t.Fatalf("30d spans %v", d)
	}
	queues := map[string][2]int64{}
	for _, q := range s.QueueStats {
		queues[q.QueueName] = [2]int64{q.Completed, q.Failed}
		if q.Waiting < 0 || q.Paused {
			t.Errorf("queue %+v", q)
		}
	}
	wantQueues := map[string][2]int64{
		domain.TopicTransactions: {2, 0}, domain.TopicDocuments: {1, 0}, domain.TopicTasks: {1, 3},
		domain.TopicContacts: {2, 1}, domain.TopicSync: {0, 0}, domain.TopicOther: {1, 0}, domain.TopicPoison: {0, 0},
	}
	if fmt.Sprint(queues) != fmt.Sprint(wantQueues) {
		t.Fatalf("queueStats %v, want %v", queues, wantQueues)
	}
	// The events list's total adds the same whole hours and partial ones.
	p := e.events("integrationId=" + a + "&startDate=" + url.QueryEscape(now.Add(-7*24*time.Hour).Format(time.RFC3339)))
	if p.Pagination.Total != 9 || len(p.Events) != 9 {
		t.Fatalf("events of 7 days: %+v", p.Pagination)
	}
	p = e.events("status=FAILED&integrationId=" + a)
	if p.Pagination.Total != 4 {
		t.Fatalf("failed events: %+v", p.Pagination)
	}
	if status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats?period=2d", e.Token, nil); status != 400 ||
		!strings.Contains(string(raw), "period") {
		t.Fatalf("bad period: %d %s", status, raw)
	}
}

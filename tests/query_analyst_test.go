package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/projections"
)

type entityList struct {
	Transactions, Contacts, Documents, Tasks []map[string]any
	StatusHistory                            []map[string]any
	Pagination                               struct {
		Limit, Total int
		HasMore      bool
		NextCursor   *string
	}
}

func (l entityList) rows() []map[string]any {
	for _, r := range [][]map[string]any{l.Transactions, l.Contacts, l.Documents, l.Tasks, l.StatusHistory} {
		if r != nil {
			return r
		}
	}
	return nil
}

func (l entityList) ids() string {
	var ids []string
	for _, r := range l.rows() {
		id, _ := r["id"].(string)
		if id == "" {
			id, _ = r["toStatus"].(string)
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ",")
}

func (e *Env) list(path string) entityList {
	e.t.Helper()
	status, raw := e.call(http.MethodGet, path, e.analystToken(), nil)
	if status != http.StatusOK {
		e.t.Fatalf("%s: %d %s", path, status, raw)
	}
	var l entityList
	apiData(e.t, raw, &l)
	return l
}

func TestAnalystQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", nil)
	b, sb := e.integration("b", nil)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	ts := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	sends := []struct {
		id   string
		typ  domain.EventType
		at   time.Time
		data string
	}{
		{"e1", domain.TransactionCreated, ts(1), `{"id":"txn_1","file_number":"F-1","status":"open","closing_date":"2024-03-01"}`},
		{"e2", domain.TransactionCreated, ts(2), `{"id":"txn_2","file_number":"F-2","status":"open","closing_date":"2024-02-01"}`},
		{"e3", domain.TransactionCreated, ts(3), `{"id":"txn_3","file_number":"F-3","status":"open"}`},
		{"e4", domain.TransactionStatusChanged, ts(4), `{"id":"txn_1","status":"in_progress"}`},
		{"e5", domain.TransactionStatusChanged, ts(5), `{"id":"txn_1","status":"clear_to_close"}`},
		{"e6", domain.ContactCreated, ts(6), `{"id":"c1","transaction_id":"txn_1","first_name":"Ada","last_name":"Lovelace","email":"Ada@Example.com"}`},
		{"e7", domain.ContactCreated, ts(7), `{"id":"c2","transaction_id":"txn_1","first_name":"Alan","last_name":"Turing","email":"alan@example.com"}`},
		{"e8", domain.ContactCreated, ts(8), `{"id":"c3","first_name":"Grace","last_name":"Hopper","email":"grace@example.com"}`},
		{"e9", domain.ContactDeleted, ts(9), `{"id":"c3"}`},
		{"e10", domain.DocumentUploaded, ts(10), `{"id":"d1","transaction_id":"txn_1","name":"deed.pdf"}`},
		{"e11", domain.DocumentUploaded, ts(11), `{"id":"d2","transaction_id":"txn_2","name":"title.pdf"}`},
		{"e12", domain.DocumentUploaded, ts(12), `{"id":"d3","transaction_id":"txn_1","name":"old.pdf"}`},
		{"e13", domain.DocumentDeleted, ts(13), `{"id":"d3"}`},
		{"e14", domain.TaskCreated, ts(14), `{"id":"k1","transaction_id":"txn_1","title":"order title","status":"open","due_date":"2024-02-10T00:00:00Z"}`},
		{"e15", domain.TaskCreated, ts(15), `{"id":"k2","transaction_id":"txn_1","title":"sign","status":"open","due_date":"2024-03-10T00:00:00Z"}`},
		{"e16", domain.TaskCompleted, ts(16), `{"id":"k2"}`},
	}
	want := map[string]string{}
	for _, s := range sends {
		if r := e.send(signedWebhook(a, sa, event(s.id, s.typ, s.at, s.data))); r.Status != 200 {
			t.Fatalf("%s: %d %s", s.id, r.Status, r.Raw)
		}
		want[s.id] = "COMPLETED"
	}
	e.send(signedWebhook(b, sb, event("x1", domain.TransactionCreated, ts(1), `{"id":"txn_1","file_number":"B-1","status":"open"}`)))
	e.waitStatuses(a, want)
	e.waitStatuses(b, map[string]string{"x1": "COMPLETED"})

	base := "/api/v1/integrations/softpro/" + a
	tests := []struct {
		name, path, want string
		total            int
	}{
		{"transactions by updatedAt", "/transactions", "txn_2,txn_3,txn_1", 3},
		{"transactions newest first", "/transactions?order=desc", "txn_1,txn_3,txn_2", 3},
		{"transactions by closing date", "/transactions?sort=closingDate", "txn_2,txn_1,txn_3", 3},
		{"status", "/transactions?status=open", "txn_2,txn_3", 2},
		{"file number", "/transactions?fileNumber=F-3", "txn_3", 1},
		{"closing from", "/transactions?closingFrom=2024-02-15", "txn_1", 1},
		{"closing to", "/transactions?closingTo=2024-02-15", "txn_2", 1},
		{"updated since", "/transactions?updatedSince=" + url.QueryEscape(ts(3).UTC().Format(time.RFC3339)), "txn_3,txn_1", 2},
		{"no match", "/transactions?status=closed", "", 0},
		{"contacts hide deleted", "/contacts", "c1,c2", 2},
		{"contacts with deleted", "/contacts?includeDeleted=true", "c1,c2,c3", 3},
		{"contact email, any case", "/contacts?email=ada@example.COM", "c1", 1},
		{"contact first name prefix", "/contacts?name=al", "c2", 1},
		{"contact full name prefix", "/contacts?name=ada%20lov", "c1", 1},
		{"contact last name prefix", "/contacts?name=TUR", "c2", 1},
		{"contact name with wildcard", "/contacts?name=%25", "", 0},
		{"documents", "/documents", "d1,d2", 2},
		{"documents with deleted", "/documents?includeDeleted=true", "d1,d2,d3", 3},
		{"documents of a transaction", "/documents?transactionId=txn_2", "d2", 1},
		{"tasks", "/tasks", "k1,k2", 2},
		{"task status", "/tasks?status=open", "k1", 1},
		{"tasks due before", "/tasks?dueBefore=2024-03-01", "k1", 1},
		{"transaction's documents", "/transactions/txn_1/documents", "d1", 1},
		{"transaction's documents with deleted", "/transactions/txn_1/documents?includeDeleted=true", "d1,d3", 2},
		{"transaction's tasks", "/transactions/txn_1/tasks", "k1,k2", 2},
		{"status history", "/transactions/txn_1/status-history", "in_progress,clear_to_close", 2},
		{"other integration", "/../" + b + "/transactions", "txn_1", 1},
	}
	for _, tt := range tests {
		path := base + tt.path
		if strings.HasPrefix(tt.path, "/../") {
			path = "/api/v1/integrations/softpro/" + strings.TrimPrefix(tt.path, "/../")
		}
		l := e.list(path)
		if l.ids() != tt.want || l.Pagination.Total != tt.total || l.Pagination.HasMore {
			t.Errorf("%s: got %q total %d, want %q total %d", tt.name, l.ids(), l.Pagination.Total, tt.want, tt.total)
		}
	}
	l := e.list(base + "/contacts?email=ada@example.com")
	c := l.Contacts[0]
	if c["firstName"] != "Ada" || c["lastName"] != "Lovelace" || c["transactionId"] != "txn_1" || c["deleted"] != false {
		t.Fatalf("contact view: %v", c)
	}

	status, raw := e.call(http.MethodGet, base+"/transactions/txn_1", e.analystToken(), nil)
	var one struct{ Transaction map[string]any }
	apiData(t, raw, &one)
	tx := one.Transaction
	if status != 200 || tx["status"] != "clear_to_close" || tx["fileNumber"] != "F-1" || tx["closingDate"] != "2024-03-01" || tx["lastEventId"] != "e5" {
		t.Fatalf("transaction: %d %v", status, tx)
	}
	for _, p := range []string{"/transactions/txn_9", "/transactions/txn_9/status-history", "/transactions/txn_9/tasks", "/transactions/txn_9/documents"} {
		if status, raw := e.call(http.MethodGet, base+p, e.Token, nil); status != 404 {
			t.Errorf("%s: %d %s", p, status, raw)
		}
	}
	for _, bad := range []struct{ query, param string }{
		{"/transactions?sort=name", "sort"}, {"/transactions?order=up", "order"}, {"/transactions?closingFrom=March", "closingFrom"},
		{"/transactions?updatedSince=now", "updatedSince"}, {"/transactions?includeDeleted=maybe", "includeDeleted"},
		{"/transactions?limit=0", "limit"}, {"/transactions?cursor=garbage!", "cursor"}, {"/tasks?dueBefore=soon", "dueBefore"},
		{"/contacts?sort=closingDate", "sort"},
		{"/transactions?cursor=" + (cursorOf(t, "not-a-time", "x")), "cursor"},
		{"/transactions/txn_1/status-history?cursor=" + (cursorOf(t, "2024-01-01T00:00:00Z", "not-a-number")), "cursor"},
	} {
		status, raw := e.call(http.MethodGet, base+bad.query, e.Token, nil)
		code, msg := errCode(raw)
		if status != 400 || code != "BAD_REQUEST" || !strings.Contains(msg, bad.param) {
			t.Errorf("%s: %d %s", bad.query, status, raw)
		}
	}
	if l := e.list(base + "/transactions?limit=9999"); l.Pagination.Limit != 500 {
		t.Fatalf("limit cap: %+v", l.Pagination)
	}
	if l := e.list("/api/v1/integrations/softpro/" + e.id("none") + "/transactions"); len(l.Transactions) != 0 || l.Pagination.Total != 0 {
		t.Fatalf("unknown integration: %+v", l)
	}
}

func cursorOf(t *testing.T, key, id string) string {
	t.Helper()
	return url.QueryEscape(projections.Cursor{Key: key, ID: id}.Encode())
}

// TestKeysetPagingWhileEventsArrive walks the transactions two at a time
// while new transactions are projected: every row that existed when the
// walk began comes exactly once.
func TestKeysetPagingWhileEventsArrive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", map[string]any{"ingestRateLimit": 100000})
	t0 := time.Now().Add(-2 * time.Minute)
	want := map[string]string{}
	for i := range 11 {
		id := fmt.Sprintf("e%02d", i)
		// Same timestamp for pairs: the id breaks ties.
		e.send(signedWebhook(a, sa, event(id, domain.TransactionCreated, t0.Add(time.Duration(i/2)*time.Second), fmt.Sprintf(`{"id":"txn_%02d","status":"open"}`, i))))
		want[id] = "COMPLETED"
	}
	e.waitStatuses(a, want)
	for _, order := range []string{"asc", "desc"} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// New transactions, older and newer than every existing one.
				at := t0.Add(-time.Minute)
				if i%2 == 0 {
					at = time.Now()
				}
				e.send(signedWebhook(a, sa, event(fmt.Sprintf("new-%s-%d", order, i), domain.TransactionCreated, at, fmt.Sprintf(`{"id":"new_%s_%d"}`, order, i))))
			}
		}()
		seen := map[string]int{}
		path := "/api/v1/integrations/softpro/" + a + "/transactions?limit=2&order=" + order
		next := ""
		for pages := 0; ; pages++ {
			if pages > 200 {
				t.Fatal("walk does not end")
			}
			l := e.list(path + next)
			for _, r := range l.Transactions {
				seen[r["id"].(string)]++
			}
			if !l.Pagination.HasMore {
				break
			}
			next = "&cursor=" + url.QueryEscape(*l.Pagination.NextCursor)
		}
		close(stop)
		wg.Wait()
		for i := range 11 {
			if n := seen[fmt.Sprintf("txn_%02d", i)]; n != 1 {
				t.Errorf("%s: txn_%02d seen %d times", order, i, n)
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s: %s seen %d times", order, id, n)
			}
		}
	}
}

func TestQueryAuthMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.integration("a", nil)
	secret := []byte(e.Cfg.JWTSecret)
	// mintAt mints a token issued at issued: an hour ago with a minute's
	// validity is an expired one (IssueToken refuses a ttl that is not
	// positive).
	mintAt := func(role string, ttl time.Duration, issued time.Time, key []byte) string {
		tok, err := httpapi.IssueToken(key, "u", role, ttl, issued)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mint := func(role string, ttl time.Duration, key []byte) string { return mintAt(role, ttl, time.Now(), key) }
	analyst := mint(httpapi.RoleAnalyst, time.Hour, secret)
	expired := mintAt(httpapi.RoleAdmin, time.Minute, time.Now().Add(-time.Hour), secret)
	forged := mint(httpapi.RoleAdmin, time.Hour, []byte("another-secret"))
	badRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u", "role": "root", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	base := "/api/v1/integrations/softpro/"
	reads := []string{
		base + "webhooks/events", base + "webhooks/events/evt_x", base + "webhooks/stats",
		base + a + "/transactions", base + a + "/transactions/t1", base + a + "/transactions/t1/status-history",
		base + a + "/transactions/t1/documents", base + a + "/transactions/t1/tasks",
		base + a + "/contacts", base + a + "/documents", base + a + "/tasks",
	}
	writes := []struct {
		path string
		body any
	}{
		{base + "webhooks/retry/evt_x", nil},
		{base + "webhooks/retry-batch", map[string]any{"integrationId": a}},
	}
	for _, p := range reads {
		for _, tc := range []struct {
			name, token string
			want        []int
		}{
			{"no token", "", []int{401}}, {"expired", expired, []int{401}}, {"wrong signature", forged, []int{401}},
			{"unknown role", badRole, []int{403}}, {"analyst", analyst, []int{200, 404}}, {"admin", e.Token, []int{200, 404}},
		} {
			status, raw := e.call(http.MethodGet, p, tc.token, nil)
			if !containsInt(tc.want, status) {
				t.Errorf("GET %s as %s: %d %s", p, tc.name, status, raw)
			}
		}
	}
	for _, w := range writes {
		for _, tc := range []struct {
			name, token string
			want        []int
		}{
			{"no token", "", []int{401}}, {"expired", expired, []int{401}}, {"wrong signature", forged, []int{401}},
			{"analyst", analyst, []int{403}}, {"admin", e.Token, []int{200, 404}},
		} {
			status, raw := e.call(http.MethodPost, w.path, tc.token, w.body)
			if !containsInt(tc.want, status) {
				t.Errorf("POST %s as %s: %d %s", w.path, tc.name, status, raw)
			}
		}
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

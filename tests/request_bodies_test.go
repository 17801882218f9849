package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// doBody sends body as it is, framed by the Content-Length it gives or,
// with chunked set, as a chunked body of unknown length.
func (e *Env) doBody(method, path, body string, chunked bool) (int, []byte) {
	e.t.Helper()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: the client sends it chunked
	}
	req, err := http.NewRequest(method, e.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if chunked && req.ContentLength != 0 {
		e.t.Fatalf("request of %q still has a known length", body)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.Token)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// TestOptionalBodiesEmptyHoweverFramed: the routes whose body is optional
// treat an empty body alike whether it comes with Content-Length 0 or
// chunked.
func TestOptionalBodiesEmptyHoweverFramed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("a", nil)
	base := "/api/v1/integrations/softpro/" + id
	for _, c := range []struct {
		path string
		want int
	}{
		// No SoftPro API connection: the run is refused for that, not for
		// its body.
		{base + "/sync", http.StatusConflict},
		{base + "/replay", http.StatusOK},
	} {
		for _, body := range []string{"", " \n"} {
			for _, chunked := range []bool{false, true} {
				status, raw := e.doBody(http.MethodPost, c.path, body, chunked)
				if status != c.want {
					t.Errorf("POST %s, body %q, chunked %v: %d %s, want %d", c.path, body, chunked, status, raw, c.want)
					continue
				}
				e.checkContract(http.MethodPost, c.path, status, raw)
			}
		}
	}
}

// TestOptionalBodiesAreStrict: an optional body, once there, is read as
// strictly as a required one: a field the route does not know (a typo, or
// another spelling) and data after the JSON value are refused with 400
// naming the problem, rather than ignored.
func TestOptionalBodiesAreStrict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("a", nil)
	base := "/api/v1/integrations/softpro/"
	for _, c := range []struct {
		path, body, want string
	}{
		{base + id + "/replay", `{"since":"2024-01-01T00:00:00Z"}`, `since`},
		{base + id + "/replay", `{"from":"2024-01-01T00:00:00Z"} {}`, `trailing data`},
		{base + id + "/sync", `{"type":["contacts"]}`, `type`},
		{base + "projections/rebuild", `{"as_of":"2024-01-01T00:00:00Z","schema":"my_copy"}`, `as_of`},
		{base + "projections/rebuild", `{"replace":true,"dryRun":true}`, `dryRun`},
	} {
		for _, chunked := range []bool{false, true} {
			status, raw := e.doBody(http.MethodPost, c.path, c.body, chunked)
			code, msg := errCode(raw)
			if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, c.want) {
				t.Errorf("POST %s %s (chunked %v): %d %s, want 400 naming %s", c.path, c.body, chunked, status, raw, c.want)
				continue
			}
			e.checkContract(http.MethodPost, c.path, status, raw)
		}
	}
	// Nothing was started: no rebuild run is recorded.
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("rebuild runs after refused requests: %s", got)
	}
}

// TestBodyFieldNamesAreCaseSensitive: a field name must be spelled as the
// route takes it, case included, in nested objects too: "ID" for id,
// "FROM" for from or "MaxRetries" in retryConfig answers 400 naming it, as
// an unknown field does, and nothing is done.
func TestBodyFieldNamesAreCaseSensitive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("a", nil)
	base := "/api/v1/integrations/softpro/"
	created := e.id("case")
	for _, c := range []struct {
		method, path, body, want string
	}{
		{http.MethodPost, base, `{"ID":"` + created + `","ORGANIZATIONID":"org_case","SyncFrequency":30}`, `unknown field "ID"`},
		{http.MethodPost, base, `{"id":"` + created + `","organizationId":"org_case","webhookRetryConfig":{"maxRetries":1,"InitialDelay":5}}`, `unknown field "InitialDelay"`},
		{http.MethodPatch, base + id, `{"syncFrequency":30,"RateLimit":5}`, `unknown field "RateLimit"`},
		{http.MethodPatch, base + id, `{"webhookRetryConfig":{"MaxRetries":3}}`, `unknown field "MaxRetries"`},
		{http.MethodPut, base + "webhooks/config", `{"integrationId":"` + id + `","retryConfig":{"maxretries":3}}`, `unknown field "maxretries"`},
		{http.MethodPut, base + "webhooks/config", `{"integrationID":"` + id + `","active":false}`, `unknown field "integrationID"`},
		{http.MethodPost, base + "webhooks/retry-batch", `{"integrationID":"` + id + `"}`, `unknown field "integrationID"`},
		{http.MethodPost, base + id + "/replay", `{"FROM":"2024-01-01T00:00:00Z"}`, `unknown field "FROM"`},
		{http.MethodPost, base + id + "/sync", `{"Types":["contacts"]}`, `unknown field "Types"`},
		{http.MethodPut, base + id + "/sync/connection", `{"baseURL":"http://127.0.0.1:1"}`, `unknown field "baseURL"`},
		{http.MethodPost, base + "projections/rebuild", `{"AsOf":"2024-01-01T00:00:00Z","SCHEMA":"x"}`, `unknown field "AsOf"`},
	} {
		status, raw := e.doBody(c.method, c.path, c.body, false)
		code, msg := errCode(raw)
		if status != http.StatusBadRequest || code != "BAD_REQUEST" || msg != "invalid JSON body: json: "+c.want {
			t.Errorf("%s %s %s: %d %s, want 400 naming it: %s", c.method, c.path, c.body, status, raw, c.want)
			continue
		}
		e.checkContract(c.method, c.path, status, raw)
	}
	// Nothing was created, changed or started.
	if status, raw := e.do(http.MethodGet, base+created, e.Token, nil); status != http.StatusNotFound {
		t.Errorf("integration of a refused create: %d %s", status, raw)
	}
	var got struct {
		Data struct {
			Integration struct {
				Active             bool
				SyncFrequency      int
				RateLimit          int
				WebhookRetryConfig *struct{ MaxRetries int }
			}
		}
	}
	_, raw := e.do(http.MethodGet, base+id, e.Token, nil)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if in := got.Data.Integration; !in.Active || in.SyncFrequency == 30 || in.RateLimit == 5 || in.WebhookRetryConfig != nil {
		t.Errorf("integration after refused changes: %s", raw)
	}
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Errorf("rebuild runs after a refused request: %s", got)
	}
}

// TestRoutesWithoutBodyRefuseFields: the routes that take no body (a
// single retry, gap filling, resync) refuse one that names a field, with
// 400 naming it, rather than ignore it: integrationId of a retry goes in
// the query string, and a resync never runs on a body it did not read. An
// empty body, however framed, and {} are none.
func TestRoutesWithoutBodyRefuseFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("a", nil)
	base := "/api/v1/integrations/softpro/"
	routes := []struct {
		path string
		want int // the answer to no body: nothing to retry, nothing to fill, no connection to resync
	}{
		{base + "webhooks/retry/evt_none?integrationId=" + id, http.StatusNotFound},
		{base + id + "/gaps/fill", http.StatusOK},
		{base + id + "/resync", http.StatusConflict},
	}
	for _, c := range routes {
		for _, b := range []struct{ body, field string }{
			{`{"integrationId":"` + id + `"}`, "integrationId"}, {`{"foo":1}`, "foo"}, {`{"from":"2024-01-01T00:00:00Z"}`, "from"},
		} {
			status, raw := e.doBody(http.MethodPost, c.path, b.body, false)
			code, msg := errCode(raw)
			if status != http.StatusBadRequest || code != "BAD_REQUEST" || msg != `invalid JSON body: json: unknown field "`+b.field+`"` {
				t.Errorf("POST %s %s: %d %s, want 400 naming %s", c.path, b.body, status, raw, b.field)
			}
			e.checkContract(http.MethodPost, c.path, status, raw)
		}
		for _, body := range []string{"", " \n", "{}", " { } "} {
			for _, chunked := range []bool{false, true} {
				if status, raw := e.doBody(http.MethodPost, c.path, body, chunked); status != c.want {
					t.Errorf("POST %s, body %q, chunked %v: %d %s, want %d", c.path, body, chunked, status, raw, c.want)
				}
			}
		}
	}
}

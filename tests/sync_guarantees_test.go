package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/ingest"
)

// A sync connection's credentials are never shown: the PUT and GET answers
// carry "***" in their place. In softpro_connections they are sealed with
// SECRETS_KEY: the row holds neither the API key nor the client secret.
func TestSyncConnectionCredentialsAreMaskedAndSealed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("sealedconn", nil)
	apiKey, clientSecret := "k-SECRET-"+randomID(12), "c-SECRET-"+randomID(12)
	path := "/api/v1/integrations/softpro/" + id + "/sync/connection"
	masked := func(what string, status int, body []byte, field string) {
		t.Helper()
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, status, body)
		}
		if !strings.Contains(string(body), `"`+field+`":"***"`) {
			t.Errorf("%s: %s, want %s shown as ***", what, body, field)
		}
		for _, secret := range []string{apiKey, clientSecret} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%s shows a credential: %s", what, body)
			}
		}
	}

	status, body := e.do(http.MethodPut, path, e.Token, map[string]any{
		"baseUrl": "http://127.0.0.1:9/t/x", "auth": "api_key", "apiKey": apiKey})
	masked("PUT api_key", status, body, "apiKey")
	status, body = e.do(http.MethodGet, path, e.Token, nil)
	masked("GET api_key", status, body, "apiKey")

	status, body = e.do(http.MethodPut, path, e.Token, map[string]any{
		"baseUrl": "http://127.0.0.1:9/t/x", "auth": "oauth", "clientId": "client-" + id, "clientSecret": clientSecret})
	masked("PUT oauth", status, body, "clientSecret")
	status, body = e.do(http.MethodGet, path, e.Token, nil)
	masked("GET oauth", status, body, "clientSecret")
	if !strings.Contains(string(body), `"clientId":"client-`+id+`"`) {
		t.Errorf("GET oauth: %s, want the client id shown", body)
	}

	// The stored row: neither credential in any column, as bytes or as
	// text, and both open with SECRETS_KEY.
	db := e.db()
	var keySealed, secretSealed []byte
	var row string
	if err := db.QueryRow(context.Background(), `SELECT api_key_sealed, client_secret_sealed, t::text
		FROM softpro_connections t WHERE integration_id = $1`, id).Scan(&keySealed, &secretSealed, &row); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{apiKey, clientSecret} {
		if bytes.Contains(keySealed, []byte(secret)) || bytes.Contains(secretSealed, []byte(secret)) || strings.Contains(row, secret) {
			t.Fatalf("softpro_connections holds a credential in the clear: %s", row)
		}
	}
	box, err := secretbox.NewFromString(e.Cfg.SecretsKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := box.Open(keySealed); err != nil || string(got) != apiKey {
		t.Errorf("api_key_sealed opens to %q, %v: want the API key", got, err)
	}
	if got, err := box.Open(secretSealed); err != nil || string(got) != clientSecret {
		t.Errorf("client_secret_sealed opens to %q, %v: want the client secret", got, err)
	}
}

// A run whose lock another run took stops at its next extension rather
// than paging to the end, ends failed with ErrLockLost, and leaves the
// integration's sync status as the holder set it.
func TestSyncThatLostItsLockMidRunStopsAndFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("lostmidrun", nil)
	// One record a page, each answer 300 ms: 160 pages, about 48 s to the
	// end.
	s, srv := simulator(t, sim.Config{Records: 40, MaxPage: 1, Faults: sim.Faults{Slow: 1, SlowDelay: 300 * time.Millisecond}}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	syncer := p.syncer(t, ingest.SyncConfig{LockTTL: time.Second, PageSize: 1}, nil)
	type result struct {
		run ingest.SyncRun
		err error
	}
	finished := make(chan result, 1)
	go func() {
		run, err := syncer.Sync(ctxT(t, 2*time.Minute), ingest.SyncRequest{IntegrationID: id})
		finished <- result{run, err}
	}()
	eventually(t, 30*time.Second, func() string {
		if n := s.Stats(id).Requests; n < 2 {
			return "the run has not asked for two pages yet"
		}
		return ""
	})
	rdb := redisOf(t, e)
	key := ingest.SyncLockKey(id)
	const other = "other-host:1:token"
	if err := rdb.Set(context.Background(), key, other, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	taken := s.Stats(id).Requests
	var res result
	select {
	case res = <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop within 30 s of losing its lock")
	}
	if !errors.Is(res.err, ingest.ErrLockLost) || res.run.Status != ingest.RunFailed || !strings.Contains(res.run.Error, ingest.ErrLockLost.Error()) {
		t.Fatalf("run: %+v, %v: want failed with ErrLockLost", res.run, res.err)
	}
	// Extensions come every third of the TTL (333 ms), pages every 300 ms:
	// a few more pages at most, not the 160 to the end.
	after := s.Stats(id).Requests
	if after-taken > 20 {
		t.Fatalf("the run asked for %d pages after losing its lock", after-taken)
	}
	time.Sleep(time.Second)
	if n := s.Stats(id).Requests; n != after {
		t.Fatalf("pages still asked for after the run ended: %d → %d", after, n)
	}

	db := e.db()
	if got := queryString(t, db, `SELECT status, error LIKE '%'||$2||'%' FROM sync_runs WHERE integration_id = $1`, id, ingest.ErrLockLost.Error()); got != "failed true" {
		t.Fatalf("recorded run: %s, want failed with the lock lost", got)
	}
	if got := queryString(t, db, `SELECT sync_status, last_sync_error IS NULL, last_sync_at IS NULL FROM softpro_integrations WHERE id = $1`, id); got != "RUNNING true true" {
		t.Fatalf("integration sync status, no error, no last sync = %s: want RUNNING as the holder set it, untouched", got)
	}
	if v := rdb.Get(context.Background(), key).Val(); v != other {
		t.Fatalf("lock holds %q, want the other run's token", v)
	}
}

// A SoftPro record without id or updated_at fails the run at once: the
// page is not asked for again, nothing of it is appended, and the
// watermark stays at the last page appended in full.
func TestSyncRecordWithoutIDOrUpdatedAtFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	noStamp, _ := e.syncIntegration("nostamp", nil)
	noID, _ := e.syncIntegration("noid", nil)
	drop := map[string]string{noStamp: "updated_at", noID: "id"}
	s, _ := simulator(t, sim.Config{Records: 50, MaxPage: 10}, noStamp, noID)
	// The third page of transactions loses a field from its second record.
	const badPage = 3
	var mu sync.Mutex
	pages := map[string]int{}
	badIDs := map[string][]string{}
	inner := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tenant string
		if parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/"); len(parts) == 4 && parts[0] == "t" && parts[2] == "v1" {
			tenant = parts[1]
		}
		field, ok := drop[tenant]
		if !ok || !strings.HasSuffix(r.URL.Path, "/v1/"+domain.SyncTransactions) {
			inner.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		pages[tenant]++
		n := pages[tenant]
		mu.Unlock()
		if n != badPage {
			inner.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		var page map[string]json.RawMessage
		var data []map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil || json.Unmarshal(page["data"], &data) != nil || len(data) < 2 {
			t.Errorf("page %d of %s: %d %s", n, tenant, rec.Code, rec.Body)
			http.Error(w, "bad page", http.StatusInternalServerError)
			return
		}
		mu.Lock()
		for _, d := range data {
			badIDs[tenant] = append(badIDs[tenant], d["id"].(string))
		}
		mu.Unlock()
		delete(data[1], field)
		page["data"], _ = json.Marshal(data)
		b, _ := json.Marshal(page)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)

	for _, id := range []string{noStamp, noID} {
		e.connect(s, srv, id, false)
		run := e.syncNow(id)
		if run.Status != ingest.RunFailed || !strings.Contains(run.Error, "id and RFC 3339 updated_at are required") {
			t.Fatalf("%s (no %s): run %+v, want failed naming id and updated_at", id, drop[id], run)
		}
		// At once: the bad page is not asked for again, and no other type
		// or later page is.
		if st := s.Stats(id); st.Requests != badPage || run.Retries != 0 || run.Records[domain.SyncTransactions] != (badPage-1)*10 {
			t.Fatalf("%s: simulator %+v, run %+v: want %d requests, no retry, %d records", id, st, run, badPage, (badPage-1)*10)
		}
		recs := s.Snapshot(id, domain.SyncTransactions)
		var mark time.Time
		if err := e.db().QueryRow(context.Background(), `SELECT watermark FROM sync_watermarks
			WHERE integration_id = $1 AND sync_type = $2`, id, domain.SyncTransactions).Scan(&mark); err != nil {
			t.Fatalf("%s: watermark: %v", id, err)
		}
		if want := recs[(badPage-1)*10-1].UpdatedAt.Truncate(time.Microsecond); !mark.Equal(want) {
			t.Fatalf("%s: watermark %s, want %s (the last full page's newest record)", id, mark, want)
		}
	}

	// Only the full pages' records are on the log.
	appended := map[string]map[string]int{}
	for _, r := range e.records(domain.TopicSync) {
		if r.Err != nil {
			t.Fatalf("record %s: %v", r.Key, r.Err)
		}
		var head struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r.Envelope.Payload, &head); err != nil {
			t.Fatal(err)
		}
		if appended[r.Key] == nil {
			appended[r.Key] = map[string]int{}
		}
		appended[r.Key][head.ID]++
	}
	for _, id := range []string{noStamp, noID} {
		mu.Lock()
		bad := badIDs[id]
		mu.Unlock()
		if len(bad) != 10 {
			t.Fatalf("%s: bad page held %d records, want 10", id, len(bad))
		}
		for _, rid := range bad {
			if appended[id][rid] != 0 {
				t.Errorf("%s: record %s of the bad page was appended", id, rid)
			}
		}
		recs := s.Snapshot(id, domain.SyncTransactions)
		for _, rec := range recs[:(badPage-1)*10] {
			if appended[id][rec.ID] != 1 {
				t.Errorf("%s: record %s of a full page appended %d times, want 1", id, rec.ID, appended[id][rec.ID])
			}
		}
		if len(appended[id]) != (badPage-1)*10 {
			t.Errorf("%s: %d records appended, want %d", id, len(appended[id]), (badPage-1)*10)
		}
	}
}

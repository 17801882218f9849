package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// arrays returns inner inside n arrays: [[…inner…]].
func arrays(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

// A webhook nested deeper than the projectors parse is refused with 400
// INVALID_PAYLOAD naming the limit, and not appended (it was accepted, then
// failed as "payload is not a JSON object" and never projected). Webhooks
// up to the limit project.
func TestWebhookNestedDeeperThanTheProjectorsReadIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	// Levels: the body 1, data 2, x's outer array 3, its innermost value n+3.
	deep := func(eventID, contactID string, n int, inner string) []byte {
		return event(eventID, domain.ContactCreated, now, fmt.Sprintf(`{"id":%q,"x":%s}`, contactID, arrays(n, inner)))
	}
	if r := e.send(signedWebhook(id, secret, deep("deep250", "con_250", 250, ""))); r.Status != 200 {
		t.Fatalf("deep250: %d %s", r.Status, r.Raw)
	}
	if r := e.send(signedWebhook(id, secret, deep("deep297", "con_297", 297, `"]]\"[["`))); r.Status != 200 {
		t.Fatalf("deep297, at the limit: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 2)
	before := e.appendedTotal()
	refused := []struct {
		name string
		body []byte
		msg  string
	}{
		{"deep299", deep("deep299", "con_299", 299, ""), "body is nested deeper than 300 levels"},
		{"deep298 with a value inside", deep("deep298", "con_298", 298, "0"), "body is nested deeper than 300 levels"},
	}
	for _, tt := range refused {
		r := e.send(signedWebhook(id, secret, tt.body))
		_, msg := errCode(r.Raw)
		if r.Status != 400 || r.code() != "INVALID_PAYLOAD" || !strings.HasPrefix(msg, tt.msg) {
			t.Errorf("%s: %d %s, want 400 INVALID_PAYLOAD %q", tt.name, r.Status, r.Raw, tt.msg)
		}
	}
	if after := e.appendedTotal(); after != before {
		t.Errorf("refused webhooks appended %d records", after-before)
	}
	if got := queryString(t, db, `SELECT string_agg(id, ',' ORDER BY id) FROM contacts WHERE integration_id = $1`, id); got != "con_250,con_297" {
		t.Errorf("contacts %q, want con_250,con_297", got)
	}
}

// A record a sync pulls is not checked as a webhook is: one nested deeper
// than the projectors parse is appended like any other and fails alone,
// FAILED with the true reason (it was "payload is not a JSON object"); the
// run succeeds and the other records project.
func TestSyncRecordNestedTooDeepFailsAloneSayingSo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.syncIntegration("deep", nil)
	s, _ := simulator(t, sim.Config{Records: 3}, id)
	deepID := s.Snapshot(id, domain.SyncContacts)[1].ID
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/v1/contacts") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var page map[string]json.RawMessage
		var data []json.RawMessage
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil || json.Unmarshal(page["data"], &data) != nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		for i, d := range data {
			if bytes.Contains(d, []byte(fmt.Sprintf(`"id":%q`, deepID))) {
				data[i] = append(bytes.TrimSuffix(bytes.TrimSpace(d), []byte("}")), []byte(`,"x":`+arrays(400, "")+`}`)...)
			}
		}
		page["data"], _ = json.Marshal(data)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	e.connect(s, srv, id, false)
	run := e.syncNow(id)
	if run.Status != ingest.RunSucceeded || run.Records[domain.SyncContacts] != 3 {
		t.Fatalf("run: %s %q, records %v; want succeeded with 3 contacts", run.Status, run.Error, run.Records)
	}
	eventually(t, 60*time.Second, func() string {
		got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id = $1 AND event_type = 'contact.synced' AND status IN ('COMPLETED', 'FAILED')`, id)
		if got != "3" {
			return "final contact events: " + got + ", want 3"
		}
		return ""
	})
	got := queryString(t, db, `SELECT coalesce(string_agg(status || ' ' || coalesce(error, ''), ','), '') FROM webhook_events WHERE integration_id = $1 AND event_type = 'contact.synced' AND status <> 'COMPLETED'`, id)
	if !strings.HasPrefix(got, "FAILED ") || strings.Contains(got, ",") || !strings.Contains(got, "payload is nested deeper than 300 levels") {
		t.Fatalf("contact events not completed: %q, want one FAILED saying payload is nested deeper than 300 levels", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM contacts WHERE integration_id = $1 AND id <> $2`, id, deepID); got != "2" {
		t.Errorf("other contacts: %s, want 2", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM contacts WHERE integration_id = $1 AND id = $2`, id, deepID); got != "0" {
		t.Errorf("the deep contact was projected: %s", got)
	}
}

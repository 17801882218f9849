package tests

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Webhooks holding what JSON allows but Postgres refuses (a \u0000 escape,
// an unpaired surrogate, an invalid UTF-8 byte) are accepted, projected with
// U+FFFD in those places, and rebuilt and validated like any other: one such
// event must not stop its partition, its poison consumer or a rebuild.
func TestPayloadsPostgresRefusesAreProjectedAndRebuilt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	bodies := []struct {
		body []byte
		note string
	}{
		{event("nul_1", domain.ContactCreated, now, `{"id":"con_nul","first_name":"A\u0000B","note":"x\u0000y"}`), "x\uFFFDy"},
		{event("sur_1", domain.ContactCreated, now, `{"id":"con_sur","first_name":"C","note":"\ud83d!"}`), "\uFFFD!"},
		{event("utf_1", domain.ContactCreated, now, "{\"id\":\"con_utf\",\"first_name\":\"D\",\"note\":\"bad \xff\"}"), "bad \uFFFD"},
		{event("ok_1", domain.ContactCreated, now, `{"id":"con_ok","first_name":"E"}`), ""},
	}
	for _, b := range bodies {
		if r := e.send(signedWebhook(id, secret, b.body)); r.Status != 200 {
			t.Fatalf("webhook %s: %d %s", b.body, r.Status, r.Raw)
		}
	}
	waitAudit(t, db, id, len(bodies))
	for _, c := range []struct{ contact, note string }{{"con_nul", "x\uFFFDy"}, {"con_sur", "\uFFFD!"}, {"con_utf", "bad \uFFFD"}} {
		if got := queryString(t, db, `SELECT payload->>'note' FROM contacts WHERE integration_id = $1 AND id = $2`, id, c.contact); got != c.note {
			t.Errorf("%s: note %q, want %q", c.contact, got, c.note)
		}
	}
	if got := queryString(t, db, `SELECT first_name FROM contacts WHERE integration_id = $1 AND id = 'con_nul'`, id); got != "A\uFFFDB" {
		t.Errorf("first name %q, want %q", got, "A\uFFFDB")
	}
	want := readModelDump(t, db, id)

	e.rebuildAndWait(nil, 90*time.Second)
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("rebuilt read models differ:\n got %s\nwant %s", got, want)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("consistency: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
)

// The largest body the endpoint accepts fits on the log and projects; one
// byte more is refused with 413. (With a body limit above what one record
// of the log holds, such webhooks got 503 on every retry.)
func TestWebhookOfTheLargestAcceptedSizeIsAppendedAndProjected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret := e.integration("a", nil)
	limit := int(app.DefaultConfig().WebhookMaxBody)
	sized := func(eventID string, n int) []byte {
		head := event(eventID, domain.DocumentUploaded, time.Now(), `{"id":"doc_big","note":""}`)
		pad := n - len(head)
		return event(eventID, domain.DocumentUploaded, time.Now(), `{"id":"doc_big","note":"`+strings.Repeat("x", pad)+`"}`)
	}
	body := sized("big_ok", limit)
	if len(body) != limit {
		t.Fatalf("body of %d bytes, want %d", len(body), limit)
	}
	if r := e.send(signedWebhook(id, secret, body)); r.Status != 200 {
		t.Fatalf("largest body: %d %.300s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 1)
	if got := queryString(t, db, `SELECT length(payload->'data'->>'note') FROM documents WHERE integration_id = $1 AND id = 'doc_big'`, id); got == "" || got == "0" {
		t.Fatalf("projected note of length %q", got)
	}
	over := sized("big_over", limit+1)
	if r := e.send(signedWebhook(id, secret, over)); r.Status != 413 || !strings.Contains(string(r.Raw), "PAYLOAD_TOO_LARGE") {
		t.Fatalf("one byte over: %d %.300s", r.Status, r.Raw)
	}
}

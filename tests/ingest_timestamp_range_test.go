package tests

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// Under standard-webhooks the window applies to webhook-timestamp, not to
// the payload's timestamp. A payload timestamp that is RFC 3339 but falls
// outside years 0000-9999 once in UTC cannot be written into the event, so
// it is a bad payload (400), not an unavailable log (503 that the sender
// retries forever).
func TestWebhookPayloadTimestampOutOfRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id, _ := e.integration("std", map[string]any{"signatureScheme": "standard-webhooks", "webhookSecret": secret})
	for _, ts := range []string{"0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"} {
		t.Run(ts, func(t *testing.T) {
			body := []byte(fmt.Sprintf(`{"id":"evt_%s","type":"task.created","timestamp":%q,"data":{"id":"k1"}}`, randomID(6), ts))
			now := time.Now()
			wid := "msg_" + randomID(8)
			sig, err := ingest.SignStandard([]byte(secret), wid, now, body)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h.Set("Webhook-Id", wid)
			h.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
			h.Set("Webhook-Signature", sig)
			r := e.send(webhook{integration: id, body: body, header: h})
			if r.Status != http.StatusBadRequest || r.code() != "INVALID_PAYLOAD" {
				t.Fatalf("timestamp %s: %d %s, want 400 INVALID_PAYLOAD", ts, r.Status, r.Raw)
			}
		})
	}
	if n := len(e.records(domain.TopicTasks)); n != 0 {
		t.Fatalf("%d records appended for refused webhooks", n)
	}
}

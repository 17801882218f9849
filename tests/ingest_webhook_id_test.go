package tests

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// The standard-webhooks scheme takes the event id from webhook-id; it must
// meet the rules a payload id meets.
func TestStandardWebhookIDIsValidated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id, _ := e.integration("std", map[string]any{"signatureScheme": "standard-webhooks", "webhookSecret": secret})
	for _, tc := range []struct {
		name      string
		webhookID string
	}{
		{name: "too long", webhookID: "msg_" + strings.Repeat("x", 300)},
		{name: "control character", webhookID: "msg\t1"},
		{name: "invalid UTF-8", webhookID: "msg_\xff"},
		{name: "U+FFFD", webhookID: "msg_\ufffd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := payload("evt_"+randomID(4), domain.TaskCreated, `{"id":"k1"}`)
			now := time.Now()
			sig, err := ingest.SignStandard([]byte(secret), tc.webhookID, now, body)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h["Webhook-Id"] = []string{tc.webhookID}
			h.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
			h.Set("Webhook-Signature", sig)
			r := e.send(webhook{integration: id, body: body, header: h})
			if r.Status != http.StatusBadRequest || r.code() != "INVALID_PAYLOAD" {
				t.Fatalf("webhook-id %q: %d %s, want 400 INVALID_PAYLOAD", tc.webhookID, r.Status, r.Raw)
			}
		})
	}
	if n := len(e.records(domain.TopicTasks)); n != 0 {
		t.Fatalf("%d records appended for refused webhooks", n)
	}
}

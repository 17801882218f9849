package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A webhook carries the sender's X-Request-Id onto the log as its
// correlation id when it is a short visible ASCII token. Any other is
// replaced by one made here, so a long header cannot push a body within
// WEBHOOK_MAX_BODY over the event log's record size.
func TestWebhookRequestIDIsBoundedBeforeItReachesTheLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", nil)
	limit := int(e.Cfg.WebhookMaxBody)
	head := event("rid_max", domain.DocumentUploaded, time.Now(), `{"id":"doc_max","note":""}`)
	full := event("rid_max", domain.DocumentUploaded, time.Now(), `{"id":"doc_max","note":"`+strings.Repeat("x", limit-len(head))+`"}`)
	if len(full) != limit {
		t.Fatalf("body of %d bytes, want %d", len(full), limit)
	}
	tests := []struct {
		name, eventID, requestID string
		body                     []byte
		carried                  bool
	}{
		{"a token is carried", "rid_token", "req-7f3a_9", payload("rid_token", domain.DocumentUploaded, `{"id":"d1"}`), true},
		{"the longest token is carried", "rid_128", strings.Repeat("r", 128), payload("rid_128", domain.DocumentUploaded, `{"id":"d2"}`), true},
		{"one byte longer is replaced", "rid_129", strings.Repeat("r", 129), payload("rid_129", domain.DocumentUploaded, `{"id":"d3"}`), false},
		{"a body at the limit with 20 KB of id", "rid_max", strings.Repeat("r", 20_000), full, false},
		{"1 MB of id", "rid_huge", strings.Repeat("r", 1_000_000), payload("rid_huge", domain.DocumentUploaded, `{"id":"d4"}`), false},
		{"spaces are replaced", "rid_space", "a b", payload("rid_space", domain.DocumentUploaded, `{"id":"d5"}`), false},
	}
	for _, tt := range tests {
		w := signedWebhook(id, secret, tt.body)
		w.header.Set("X-Request-Id", tt.requestID)
		if r := e.send(w); r.Status != 200 {
			t.Fatalf("%s: %d %.200s, want 200", tt.name, r.Status, r.Raw)
		}
	}
	got := map[string]string{}
	for _, rec := range e.records(domain.TopicDocuments) {
		got[rec.Envelope.EventID] = rec.Envelope.CorrelationID
	}
	for _, tt := range tests {
		c, ok := got[tt.eventID]
		switch {
		case !ok:
			t.Errorf("%s: %s not on the log", tt.name, tt.eventID)
		case tt.carried && c != tt.requestID:
			t.Errorf("%s: correlation id %.40q, want the sender's %.40q", tt.name, c, tt.requestID)
		case !tt.carried && (c == "" || c == tt.requestID || len(c) > 128):
			t.Errorf("%s: correlation id %.40q (%d bytes), want one made here", tt.name, c, len(c))
		}
	}
}

package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

func TestParsePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       string
		wantReason string
	}{
		{name: "spec example", body: `{"id":"evt_123456","type":"transaction.updated","timestamp":"2024-01-15T10:30:00Z","data":{"id":"txn_789"}}`},
		{name: "fractional seconds and offset", body: `{"id":"e","type":"t","timestamp":"2024-01-15T12:30:00.123+02:00"}`},
		{name: "array", body: `[1,2]`, wantReason: "body must be a JSON object"},
		{name: "null", body: `null`, wantReason: "body must be a JSON object"},
		{name: "empty", body: ``, wantReason: "body must be a JSON object"},
		{name: "garbage", body: `{"id":`, wantReason: "not valid JSON"},
		{name: "no id", body: `{"type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "id is required"},
		{name: "empty id", body: `{"id":"","type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "id is required"},
		{name: "numeric id", body: `{"id":5,"type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "id must be a string"},
		{name: "no type", body: `{"id":"e","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "type is required"},
		{name: "no timestamp", body: `{"id":"e","type":"t"}`, wantReason: "timestamp is required"},
		{name: "bad timestamp", body: `{"id":"e","type":"t","timestamp":"yesterday"}`, wantReason: "RFC 3339"},
		{name: "long id", body: `{"id":"` + strings.Repeat("x", 257) + `","type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "at most 256"},
		{name: "NUL in id", body: `{"id":"e\u0000","type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "id must not contain control characters"},
		{name: "newline in type", body: `{"id":"e","type":"t\n","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "type must not contain control characters"},
		{name: "invalid UTF-8 in id", body: "{\"id\":\"evt_\xff\",\"type\":\"t\",\"timestamp\":\"2024-01-15T10:30:00Z\"}", wantReason: "id must be valid UTF-8 without U+FFFD"},
		{name: "unpaired surrogate in id", body: `{"id":"evt_\ud800","type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "id must be valid UTF-8 without U+FFFD"},
		{name: "U+FFFD in id", body: `{"id":"evt_\ufffd","type":"t","timestamp":"2024-01-15T10:30:00Z"}`, wantReason: "id must be valid UTF-8 without U+FFFD"},
		{name: "other non-ASCII in id", body: `{"id":"évt_€_\u00e9","type":"t","timestamp":"2024-01-15T10:30:00Z"}`},
		{name: "NUL in data", body: `{"id":"e","type":"t","timestamp":"2024-01-15T10:30:00Z","data":{"note":"a\u0000b"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePayload([]byte(tt.body))
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if p.ID == "" || p.Type == "" || p.Timestamp.IsZero() || p.Timestamp.Location() != time.UTC {
					t.Fatalf("parsed %+v", p)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), tt.wantReason) {
				t.Fatalf("err = %v, want reason %q", err, tt.wantReason)
			}
		})
	}
}

// FuzzVerifyAndParse feeds arbitrary bodies and headers through the parts of
// ingest that see untrusted input: neither may panic, and a body accepted by
// the parser always has its three required fields.
func FuzzVerifyAndParse(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"transaction.updated","timestamp":"2024-01-15T10:30:00Z","data":{}}`), githubSig, stdID, stdTS)
	f.Add([]byte(githubBody), githubSig, "", "")
	f.Add([]byte(stdBody), stdSig, stdID, stdTS)
	f.Add([]byte(`[]`), "sha256=zz", "id", "-1")
	f.Add([]byte(`{"id":1}`), "", "", "99999999999999999999")
	f.Fuzz(func(t *testing.T, body []byte, sig, id, ts string) {
		secrets := []domain.Secret{secret("k", githubSecret), secret("s", stdSecret)}
		h := hdr("X-Softpro-Signature", sig, "Webhook-Id", id, "Webhook-Timestamp", ts, "Webhook-Signature", sig)
		_, _ = Verify("softpro", h, body, secrets)
		_, _ = Verify("standard-webhooks", h, body, secrets)
		p, err := ParsePayload(body)
		if err == nil && (p.ID == "" || p.Type == "" || p.Timestamp.IsZero()) {
			t.Fatalf("accepted payload missing a field: %+v", p)
		}
		if err != nil && !errors.Is(err, ErrInvalidPayload) {
			t.Fatalf("parse error not ErrInvalidPayload: %v", err)
		}
	})
}

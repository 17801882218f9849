package ingest

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func secret(id, v string) domain.Secret { return domain.Secret{KeyID: id, Value: []byte(v)} }

// GitHub's published example: secret "It's a Secret to Everybody", body
// "Hello, World!".
const (
	githubSecret = "It's a Secret to Everybody"
	githubBody   = "Hello, World!"
	githubSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

// The Standard Webhooks specification's example message.
const (
	stdSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	stdID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	stdTS     = "1614265330"
	stdBody   = `{"test": 2432232314}`
	stdSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestVerifySoftPro(t *testing.T) {
	t.Parallel()
	good := []domain.Secret{secret("k1", githubSecret)}
	tests := []struct {
		name    string
		h       http.Header
		secrets []domain.Secret
		wantErr error
		wantKey string
	}{
		{name: "github vector with prefix", h: hdr("X-Softpro-Signature", githubSig), secrets: good, wantKey: "k1"},
		{name: "bare hex", h: hdr("X-Softpro-Signature", githubSig[7:]), secrets: good, wantKey: "k1"},
		{name: "x-signature fallback", h: hdr("X-Signature", githubSig), secrets: good, wantKey: "k1"},
		{name: "uppercase hex", h: hdr("X-Signature", "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"), secrets: good, wantKey: "k1"},
		{name: "missing", h: hdr(), secrets: good, wantErr: ErrSignatureMissing},
		{name: "wrong secret", h: hdr("X-Softpro-Signature", githubSig), secrets: []domain.Secret{secret("k1", "nope")}, wantErr: ErrSignatureInvalid},
		{name: "no secrets fails closed", h: hdr("X-Softpro-Signature", githubSig), secrets: nil, wantErr: ErrSignatureInvalid},
		{name: "truncated", h: hdr("X-Softpro-Signature", githubSig[:40]), secrets: good, wantErr: ErrSignatureInvalid},
		{name: "not hex", h: hdr("X-Softpro-Signature", "sha256="+string(make([]byte, 64))), secrets: good, wantErr: ErrSignatureInvalid},
		{name: "second of two secrets", h: hdr("X-Softpro-Signature", githubSig), secrets: []domain.Secret{secret("new", "other"), secret("old", githubSecret)}, wantKey: "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := Verify(domain.SchemeSoftPro, tt.h, []byte(githubBody), tt.secrets)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if v.KeyID != tt.wantKey {
				t.Fatalf("key = %q, want %q", v.KeyID, tt.wantKey)
			}
		})
	}
	if got := SignSoftPro([]byte(githubSecret), []byte(githubBody)); got != githubSig {
		t.Fatalf("SignSoftPro = %s, want %s", got, githubSig)
	}
}

func TestVerifyStandardWebhooks(t *testing.T) {
	t.Parallel()
	good := []domain.Secret{secret("k1", stdSecret)}
	tests := []struct {
		name    string
		h       http.Header
		body    string
		wantErr error
	}{
		{name: "spec example", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", stdSig), body: stdBody},
		{name: "one of several signatures", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xyz "+stdSig), body: stdBody},
		{name: "missing id", h: hdr("Webhook-Timestamp", stdTS, "Webhook-Signature", stdSig), body: stdBody, wantErr: ErrSignatureMissing},
		{name: "missing signature", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS), body: stdBody, wantErr: ErrSignatureMissing},
		{name: "tampered body", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", stdSig), body: `{"test": 2432232315}`, wantErr: ErrSignatureInvalid},
		{name: "other timestamp", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", "1614265331", "Webhook-Signature", stdSig), body: stdBody, wantErr: ErrSignatureInvalid},
		{name: "other id", h: hdr("Webhook-Id", "msg_x", "Webhook-Timestamp", stdTS, "Webhook-Signature", stdSig), body: stdBody, wantErr: ErrSignatureInvalid},
		{name: "timestamp not a number", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", "soon", "Webhook-Signature", stdSig), body: stdBody, wantErr: ErrSignatureInvalid},
		{name: "unknown version only", h: hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", "v2"+stdSig[2:]), body: stdBody, wantErr: ErrSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := Verify(domain.SchemeStandardWebhooks, tt.h, []byte(tt.body), good)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (v.WebhookID != stdID || v.Timestamp.Unix() != 1614265330 || v.KeyID != "k1") {
				t.Fatalf("verified = %+v", v)
			}
		})
	}
	sig, err := SignStandard([]byte(stdSecret), stdID, time.Unix(1614265330, 0), []byte(stdBody))
	if err != nil || sig != stdSig {
		t.Fatalf("SignStandard = %q, %v; want %q", sig, err, stdSig)
	}
}

func TestInWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)
	ttl := 5 * time.Minute
	tests := []struct {
		name string
		ts   time.Time
		want bool
	}{
		{name: "now", ts: now, want: true},
		{name: "exactly ttl ago", ts: now.Add(-ttl), want: true},
		{name: "just over ttl ago", ts: now.Add(-ttl - time.Millisecond), want: false},
		{name: "exactly ttl ahead", ts: now.Add(ttl), want: true},
		{name: "just over ttl ahead", ts: now.Add(ttl + time.Millisecond), want: false},
		{name: "a day old", ts: now.Add(-24 * time.Hour), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := InWindow(tt.ts, now, ttl); got != tt.want {
				t.Fatalf("InWindow = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSecretRotationWindows(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	grace := 24 * time.Hour
	in := domain.Integration{Secrets: []domain.Secret{
		{KeyID: "old", Value: []byte("old-secret"), NotBefore: t0, NotAfter: t0.Add(10*time.Hour + grace)},
		{KeyID: "new", Value: []byte("new-secret"), NotBefore: t0.Add(10 * time.Hour)},
	}}
	body := []byte(`{"id":"e"}`)
	oldSig := hdr("X-Softpro-Signature", SignSoftPro([]byte("old-secret"), body))
	newSig := hdr("X-Softpro-Signature", SignSoftPro([]byte("new-secret"), body))
	tests := []struct {
		name         string
		at           time.Time
		oldOK, newOK bool
	}{
		{name: "before rotation", at: t0.Add(time.Hour), oldOK: true, newOK: false},
		{name: "during grace", at: t0.Add(20 * time.Hour), oldOK: true, newOK: true},
		{name: "last instant of grace", at: t0.Add(10*time.Hour + grace - time.Nanosecond), oldOK: true, newOK: true},
		{name: "grace over", at: t0.Add(10*time.Hour + grace), oldOK: false, newOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			valid := in.ValidSecrets(tt.at)
			_, errOld := Verify(domain.SchemeSoftPro, oldSig, body, valid)
			_, errNew := Verify(domain.SchemeSoftPro, newSig, body, valid)
			if (errOld == nil) != tt.oldOK || (errNew == nil) != tt.newOK {
				t.Fatalf("old ok=%v new ok=%v, want %v %v", errOld == nil, errNew == nil, tt.oldOK, tt.newOK)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	want := map[domain.EventType]struct {
		topic    string
		priority domain.Priority
	}{
		domain.TransactionCreated:       {domain.TopicTransactions, 2},
		domain.TransactionUpdated:       {domain.TopicTransactions, 2},
		domain.TransactionStatusChanged: {domain.TopicTransactions, 1},
		domain.ClosingScheduled:         {domain.TopicTransactions, 1},
		domain.ClosingCompleted:         {domain.TopicTransactions, 1},
		domain.DocumentUploaded:         {domain.TopicDocuments, 3},
		domain.DocumentUpdated:          {domain.TopicDocuments, 3},
		domain.DocumentDeleted:          {domain.TopicDocuments, 3},
		domain.TaskCreated:              {domain.TopicTasks, 3},
		domain.TaskCompleted:            {domain.TopicTasks, 3},
		domain.ContactCreated:           {domain.TopicContacts, 4},
		domain.ContactUpdated:           {domain.TopicContacts, 4},
		domain.ContactDeleted:           {domain.TopicContacts, 4},
		"escrow.funded":                 {domain.TopicOther, 5},
		"":                              {domain.TopicOther, 5},
	}
	if len(domain.WebhookTypes) != 13 {
		t.Fatalf("spec lists 13 webhook types, domain has %d", len(domain.WebhookTypes))
	}
	for _, typ := range domain.WebhookTypes {
		if _, ok := want[typ]; !ok {
			t.Errorf("type %s has no expectation", typ)
		}
	}
	for typ, w := range want {
		if got := typ.Topic(); got != w.topic {
			t.Errorf("%q.Topic() = %s, want %s", typ, got, w.topic)
		}
		if got := typ.Priority(); got != w.priority {
			t.Errorf("%q.Priority() = %d, want %d", typ, got, w.priority)
		}
	}
}

// A standard-webhooks secret is checked by the key it decodes to, not by
// its text's length: "whsec_" and a little base64 can pass 8 characters
// and leave a key of one byte, or none.
func TestStandardSecretsNeedAKeyOfSixteenBytes(t *testing.T) {
	t.Parallel()
	for secret, ok := range map[string]bool{
		"whsec_AA==":                             false, // 1 byte
		"whsec_\r\n\r\n":                         false, // no key at all
		"whsec_AAAAAAAAAAAAAAAAAAAA":             false, // 15 bytes
		"whsec_AAAAAAAAAAAAAAAAAAAAAA==":         true,  // 16 bytes
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": true,  // 24 bytes
	} {
		if p := SecretProblem(domain.SchemeStandardWebhooks, secret); (p == "") != ok {
			t.Errorf("SecretProblem(%q) = %q, want acceptable %v", secret, p, ok)
		}
	}
}

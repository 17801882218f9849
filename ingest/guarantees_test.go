package ingest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// flipLastHex returns a softpro signature with the last byte of its MAC
// changed.
func flipLastHex(sig string) string {
	prefix, h, _ := strings.Cut(sig, "=")
	b, _ := hex.DecodeString(h)
	b[len(b)-1] ^= 0x01
	return prefix + "=" + hex.EncodeToString(b)
}

func TestVerifyChecksEveryByteOfTheMAC(t *testing.T) {
	t.Parallel()
	body := []byte(githubBody)
	good := []domain.Secret{secret("k1", githubSecret)}
	sig := SignSoftPro([]byte(githubSecret), body)
	if _, err := Verify(domain.SchemeSoftPro, hdr("X-Softpro-Signature", sig), body, good); err != nil {
		t.Fatalf("the genuine signature: %v", err)
	}
	for name, bad := range map[string]string{
		"last byte changed":  flipLastHex(sig),
		"first half only":    sig[:7+32],
		"one byte short":     sig[:len(sig)-2],
		"with a byte more":   sig + "00",
		"another secret's":   SignSoftPro([]byte(githubSecret+"x"), body),
		"another body's":     SignSoftPro([]byte(githubSecret), append(body, ' ')),
		"empty after prefix": "sha256=",
	} {
		if _, err := Verify(domain.SchemeSoftPro, hdr("X-Softpro-Signature", bad), body, good); !errors.Is(err, ErrSignatureInvalid) {
			t.Errorf("softpro, %s: err = %v, want %v", name, err, ErrSignatureInvalid)
		}
	}

	std := []domain.Secret{secret("k1", stdSecret)}
	mac, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(stdSig, "v1,"))
	flipped := append([]byte(nil), mac...)
	flipped[len(flipped)-1] ^= 0x01
	for name, bad := range map[string]string{
		"last byte changed": "v1," + base64.StdEncoding.EncodeToString(flipped),
		"first half only":   "v1," + base64.StdEncoding.EncodeToString(mac[:16]),
		"one byte short":    "v1," + base64.StdEncoding.EncodeToString(mac[:len(mac)-1]),
	} {
		h := hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", bad)
		if _, err := Verify(domain.SchemeStandardWebhooks, h, []byte(stdBody), std); !errors.Is(err, ErrSignatureInvalid) {
			t.Errorf("standard-webhooks, %s: err = %v, want %v", name, err, ErrSignatureInvalid)
		}
	}
	// A secret that is not a whsec_ base64 key verifies nothing, even a
	// signature made with its raw bytes as the key.
	raw := []domain.Secret{secret("raw", "not base64!")}
	rawSig, _ := SignStandard([]byte("whsec_"+base64.StdEncoding.EncodeToString([]byte("not base64!"))), stdID, time.Unix(1614265330, 0), []byte(stdBody))
	h := hdr("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", rawSig)
	if _, err := Verify(domain.SchemeStandardWebhooks, h, []byte(stdBody), raw); !errors.Is(err, ErrSignatureInvalid) {
		t.Errorf("standard-webhooks with an undecodable secret: err = %v, want %v", err, ErrSignatureInvalid)
	}
}

// The replay window is SignatureTTL either side of the receiver's clock,
// inclusive, for the payload's timestamp (softpro) and the signed one
// (standard-webhooks) alike.
func TestReceiverReplayWindowEdges(t *testing.T) {
	t.Parallel()
	sec := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	src := fakeSource{
		"int_a": {ID: "int_a", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeSoftPro, Secrets: []domain.Secret{secret("k1", "s3cret-a")}},
		"std":   {ID: "std", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeStandardWebhooks, Secrets: []domain.Secret{secret("k", sec)}},
	}
	ttl := 5 * time.Minute
	r, err := NewReceiver(Config{Now: func() time.Time { return now }, SignatureTTL: ttl}, src, &fakeGate{seen: map[string]bool{}}, &fakeLog{})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		offset time.Duration
		ok     bool
	}{
		{offset: -ttl, ok: true},
		{offset: -ttl - time.Second, ok: false},
		{offset: ttl, ok: true},
		{offset: ttl + time.Second, ok: false},
		{offset: -ttl - 30*time.Second, ok: false},
		{offset: ttl + 30*time.Second, ok: false},
	} {
		ts := now.Add(tc.offset)
		b := body(fmt.Sprintf("evt_sp_%d", i), "task.created", ts)
		_, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
		checkWindow(t, "softpro payload timestamp", tc.offset, tc.ok, err)

		// The signed timestamp rules; the payload's is now.
		b = body("evt_payload", "task.created", now)
		id := fmt.Sprintf("msg_%d", i)
		sig, _ := SignStandard([]byte(sec), id, ts, []byte(b))
		h := hdr("Webhook-Id", id, "Webhook-Timestamp", fmt.Sprint(ts.Unix()), "Webhook-Signature", sig)
		_, err = r.Receive(context.Background(), Request{IntegrationID: "std", ContentType: "application/json", Header: h, Body: strings.NewReader(b)})
		checkWindow(t, "standard-webhooks signed timestamp", tc.offset, tc.ok, err)
	}
}

func checkWindow(t *testing.T, what string, offset time.Duration, ok bool, err error) {
	t.Helper()
	var rj *Rejection
	switch {
	case ok && err != nil:
		t.Errorf("%s %v from now: %v, want accepted", what, offset, err)
	case !ok && (!errors.As(err, &rj) || rj.Code != CodeTimestampOutOfWindow):
		t.Errorf("%s %v from now: %v, want %s", what, offset, err, CodeTimestampOutOfWindow)
	}
}

// recordingGate admits everything once and records the tickets and
// releases it was given.
type recordingGate struct {
	mu       sync.Mutex
	tickets  []Ticket
	released []string
}

func (g *recordingGate) Admit(_ context.Context, t Ticket) (Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tickets = append(g.tickets, t)
	return Admission{Allowed: true}, nil
}

func (g *recordingGate) Release(_ context.Context, integrationID, eventID string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.released = append(g.released, integrationID+"/"+eventID)
	return nil
}

// The gate is asked for the integration's own limit (else the configured
// default) per minute, and to keep the fingerprint for the configured
// dedup TTL.
func TestReceiverTicketCarriesLimitWindowAndDedupTTL(t *testing.T) {
	t.Parallel()
	src := fakeSource{
		"own":     {ID: "own", Active: true, WebhookEnabled: true, IngestRateLimit: 5, Secrets: []domain.Secret{secret("k1", "s3cret-a")}},
		"default": {ID: "default", Active: true, WebhookEnabled: true, Secrets: []domain.Secret{secret("k1", "s3cret-a")}},
	}
	g := &recordingGate{}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }, DedupTTL: 90 * time.Minute, IngestRateLimit: 77}, src, g, &fakeLog{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"own", "default"} {
		b := body("evt_"+id, "task.created", now)
		if _, err := r.Receive(context.Background(), Request{IntegrationID: id, ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if len(g.tickets) != 2 {
		t.Fatalf("tickets %+v", g.tickets)
	}
	for i, want := range []Ticket{
		{IntegrationID: "own", EventID: "evt_own", Limit: 5, Window: time.Minute, DedupTTL: 90 * time.Minute},
		{IntegrationID: "default", EventID: "evt_default", Limit: 77, Window: time.Minute, DedupTTL: 90 * time.Minute},
	} {
		if got := g.tickets[i]; got != want {
			t.Errorf("ticket %d = %+v, want %+v", i, got, want)
		}
	}
}

// Under standard-webhooks the event id is the webhook-id: a failed append
// releases that fingerprint, not one named after the payload's id.
func TestReceiverReleasesTheWebhookIDWhenAppendFails(t *testing.T) {
	t.Parallel()
	sec := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	src := fakeSource{"std": {ID: "std", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeStandardWebhooks, Secrets: []domain.Secret{secret("k", sec)}}}
	g := &recordingGate{}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }}, src, g, &fakeLog{err: errors.New("broker down")})
	if err != nil {
		t.Fatal(err)
	}
	b := body("evt_payload", "task.created", now)
	sig, _ := SignStandard([]byte(sec), "msg_7", now, []byte(b))
	h := hdr("Webhook-Id", "msg_7", "Webhook-Timestamp", fmt.Sprint(now.Unix()), "Webhook-Signature", sig)
	_, err = r.Receive(context.Background(), Request{IntegrationID: "std", ContentType: "application/json", Header: h, Body: strings.NewReader(b)})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeAppendFailed {
		t.Fatalf("err = %v, want %s", err, CodeAppendFailed)
	}
	if len(g.released) != 1 || g.released[0] != "std/msg_7" {
		t.Fatalf("released %v, want [std/msg_7]", g.released)
	}
}

// hangingLog never acknowledges: it returns only when its context ends.
type hangingLog struct{}

func (hangingLog) Append(ctx context.Context, _ domain.Envelope) (Position, error) {
	<-ctx.Done()
	return Position{}, ctx.Err()
}

// A broker that does not acknowledge is waited for AppendTimeout, then the
// sender is told to retry and the fingerprint is released.
func TestReceiverGivesUpOnAnUnacknowledgedAppendAfterTheTimeout(t *testing.T) {
	t.Parallel()
	src := fakeSource{"int_a": {ID: "int_a", Active: true, WebhookEnabled: true, Secrets: []domain.Secret{secret("k1", "s3cret-a")}}}
	g := &recordingGate{}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }, AppendTimeout: 100 * time.Millisecond}, src, g, hangingLog{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := body("evt_hang", "task.created", now)
	start := time.Now()
	_, err = r.Receive(ctx, Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeAppendFailed || rj.RetryAfter <= 0 {
		t.Fatalf("err = %v, want %s with a retry", err, CodeAppendFailed)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v for the broker, the append timeout is 100ms", d)
	}
	if len(g.released) != 1 || g.released[0] != "int_a/evt_hang" {
		t.Fatalf("released %v", g.released)
	}
}

// failingSource cannot look integrations up.
type failingSource struct{}

func (failingSource) Integration(context.Context, string) (domain.Integration, error) {
	return domain.Integration{}, errors.New("connection refused")
}

// An integration that cannot be looked up is not an unknown one: the sender
// is told to retry.
func TestReceiverAnswersUnavailableWhenTheLookupFails(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }, RetryAfter: 7 * time.Second}, failingSource{}, &fakeGate{seen: map[string]bool{}}, log)
	if err != nil {
		t.Fatal(err)
	}
	b := body("evt_1", "task.created", now)
	_, err = r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeUnavailable || rj.RetryAfter != 7*time.Second {
		t.Fatalf("err = %v, want %s with Retry-After 7s", err, CodeUnavailable)
	}
	if len(log.envs) != 0 {
		t.Fatalf("appended %d", len(log.envs))
	}
}

// sizedBody is a webhook body of exactly n bytes.
func sizedBody(t *testing.T, id string, n int) string {
	t.Helper()
	head := fmt.Sprintf(`{"id":%q,"type":"task.created","timestamp":%q,"data":{"note":""}}`, id, now.Format(time.RFC3339))
	if n < len(head) {
		t.Fatalf("%d bytes is too small for a body", n)
	}
	return fmt.Sprintf(`{"id":%q,"type":"task.created","timestamp":%q,"data":{"note":"%s"}}`, id, now.Format(time.RFC3339), strings.Repeat("x", n-len(head)))
}

// MaxBody bytes are accepted, one more is not; the limit holds for bodies
// read in pieces too.
func TestReceiverBodyLimitIsExact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size int
		want Code
	}{
		{size: 511},
		{size: 512},
		{size: 513, want: CodePayloadTooLarge},
	} {
		log := &fakeLog{}
		r := newTestReceiver(t, &fakeGate{seen: map[string]bool{}}, log)
		b := sizedBody(t, fmt.Sprintf("evt_%d", tc.size), tc.size)
		for _, piece := range []int{1, 7, 4096} {
			_, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b),
				Body: &pieceReader{s: b, n: piece}})
			var rj *Rejection
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%d bytes read %d at a time: %v, want accepted", tc.size, piece, err)
			case tc.want != "" && (!errors.As(err, &rj) || rj.Code != tc.want):
				t.Errorf("%d bytes read %d at a time: %v, want %s", tc.size, piece, err, tc.want)
			}
		}
	}
}

// pieceReader returns s at most n bytes per Read.
type pieceReader struct {
	s string
	n int
}

func (p *pieceReader) Read(b []byte) (int, error) {
	if p.s == "" {
		return 0, io.EOF
	}
	k := min(len(b), p.n, len(p.s))
	copy(b, p.s[:k])
	p.s = p.s[k:]
	return k, nil
}

func TestReceiverAcceptsJSONMediaTypesOnly(t *testing.T) {
	t.Parallel()
	for ctype, ok := range map[string]bool{
		"application/json":                  true,
		"Application/JSON; charset=utf-8":   true,
		"application/vnd.softpro+json":      true,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"application/jsonp":                 false,
		"text/json+plain":                   false,
	} {
		r := newTestReceiver(t, &fakeGate{seen: map[string]bool{}}, &fakeLog{})
		b := body("evt_ct", "task.created", now)
		_, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: ctype, Header: signed(b), Body: strings.NewReader(b)})
		var rj *Rejection
		switch {
		case ok && err != nil:
			t.Errorf("%q: %v, want accepted", ctype, err)
		case !ok && (!errors.As(err, &rj) || rj.Code != CodeUnsupportedMediaType):
			t.Errorf("%q: %v, want %s", ctype, err, CodeUnsupportedMediaType)
		}
	}
}

func TestParsePayloadLengthLimitsAreExact(t *testing.T) {
	t.Parallel()
	mk := func(id, typ string) string {
		return fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":"2024-01-15T10:30:00Z"}`, id, typ)
	}
	for name, tc := range map[string]struct {
		body string
		ok   bool
	}{
		"id of 256":   {body: mk(strings.Repeat("i", 256), "t"), ok: true},
		"id of 257":   {body: mk(strings.Repeat("i", 257), "t")},
		"type of 128": {body: mk("e", strings.Repeat("t", 128)), ok: true},
		"type of 129": {body: mk("e", strings.Repeat("t", 129))},
		"tab in type": {body: mk("e", "task.\tcreated")},
	} {
		_, err := ParsePayload([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", name, err, tc.ok)
		}
	}
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// In-memory fakes of the ports, for the receiver's logic only; the real
// adapters are exercised in tests/.

type fakeSource map[string]domain.Integration

func (f fakeSource) Integration(_ context.Context, id string) (domain.Integration, error) {
	in, ok := f[id]
	if !ok {
		return domain.Integration{}, fmt.Errorf("integration %s: %w", id, domain.ErrNotFound)
	}
	return in, nil
}

type fakeGate struct {
	mu       sync.Mutex
	seen     map[string]bool
	deny     bool
	err      error
	released []string
}

func (g *fakeGate) Admit(_ context.Context, t Ticket) (Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return Admission{}, g.err
	}
	if g.deny {
		return Admission{RetryAfter: 1500 * time.Millisecond}, nil
	}
	k := t.IntegrationID + ":" + t.EventID
	dup := g.seen[k]
	g.seen[k] = true
	return Admission{Allowed: true, Duplicate: dup}, nil
}

func (g *fakeGate) Release(_ context.Context, integrationID, eventID string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.seen, integrationID+":"+eventID)
	g.released = append(g.released, eventID)
	return nil
}

type fakeLog struct {
	mu   sync.Mutex
	envs []domain.Envelope
	err  error
}

func (l *fakeLog) Append(_ context.Context, e domain.Envelope) (Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return Position{}, l.err
	}
	l.envs = append(l.envs, e)
	return Position{Topic: e.Type.Topic(), Offset: int64(len(l.envs) - 1)}, nil
}

var now = time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)

func newTestReceiver(t *testing.T, gate *fakeGate, log *fakeLog) *Receiver {
	t.Helper()
	src := fakeSource{
		"int_a":     {ID: "int_a", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeSoftPro, Secrets: []domain.Secret{secret("k1", "s3cret-a")}},
		"inactive":  {ID: "inactive", Active: false, WebhookEnabled: true, Secrets: []domain.Secret{secret("k1", "x")}},
		"hooks-off": {ID: "hooks-off", Active: true, WebhookEnabled: false, Secrets: []domain.Secret{secret("k1", "x")}},
	}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }, MaxBody: 512}, src, gate, log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func body(id, typ string, ts time.Time) string {
	return fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":%q,"data":{"id":"txn_1"}}`, id, typ, ts.Format(time.RFC3339))
}

func signed(b string) http.Header {
	return hdr("X-Softpro-Signature", SignSoftPro([]byte("s3cret-a"), []byte(b)))
}

func TestReceiverChecksInOrder(t *testing.T) {
	t.Parallel()
	ok := body("evt_1", "transaction.updated", now)
	tests := []struct {
		name        string
		integration string
		ctype       string
		h           http.Header
		body        string
		want        Code
	}{
		{name: "unknown integration beats everything", integration: "nope", ctype: "text/plain", body: strings.Repeat("x", 1000), want: CodeIntegrationNotFound},
		{name: "inactive", integration: "inactive", ctype: "application/json", body: ok, want: CodeIntegrationDisabled},
		{name: "webhooks disabled", integration: "hooks-off", ctype: "application/json", body: ok, want: CodeIntegrationDisabled},
		{name: "too large beats content type", integration: "int_a", ctype: "text/plain", body: strings.Repeat("x", 513), want: CodePayloadTooLarge},
		{name: "not json", integration: "int_a", ctype: "text/plain", h: signed(ok), body: ok, want: CodeUnsupportedMediaType},
		{name: "no content type", integration: "int_a", ctype: "", h: signed(ok), body: ok, want: CodeUnsupportedMediaType},
		{name: "signature missing", integration: "int_a", ctype: "application/json", h: hdr(), body: ok, want: CodeSignatureMissing},
		{name: "signature wrong", integration: "int_a", ctype: "application/json", h: signed(ok + " "), body: ok, want: CodeSignatureInvalid},
		{name: "signed garbage is invalid payload", integration: "int_a", ctype: "application/json", h: signed("[1]"), body: "[1]", want: CodeInvalidPayload},
		{name: "old timestamp", integration: "int_a", ctype: "application/json", h: signed(body("e", "t", now.Add(-6*time.Minute))), body: body("e", "t", now.Add(-6*time.Minute)), want: CodeTimestampOutOfWindow},
		{name: "future timestamp", integration: "int_a", ctype: "application/json", h: signed(body("e", "t", now.Add(6*time.Minute))), body: body("e", "t", now.Add(6*time.Minute)), want: CodeTimestampOutOfWindow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := &fakeLog{}
			r := newTestReceiver(t, &fakeGate{seen: map[string]bool{}}, log)
			_, err := r.Receive(context.Background(), Request{IntegrationID: tt.integration, ContentType: tt.ctype, Header: tt.h, Body: strings.NewReader(tt.body)})
			var rj *Rejection
			if !errors.As(err, &rj) || rj.Code != tt.want {
				t.Fatalf("err = %v, want code %s", err, tt.want)
			}
			if len(log.envs) != 0 {
				t.Fatalf("a rejected webhook appended %d events", len(log.envs))
			}
		})
	}
}

func TestReceiverAcceptsDedupsAndLimits(t *testing.T) {
	t.Parallel()
	gate := &fakeGate{seen: map[string]bool{}}
	log := &fakeLog{}
	r := newTestReceiver(t, gate, log)
	b := `{"id":"evt_1", "type":"transaction.status_changed","timestamp":"2026-01-15T10:29:00Z","data":{ "a" : 1 }}`
	req := func() Request {
		return Request{IntegrationID: "int_a", ContentType: "application/json; charset=utf-8", Header: signed(b), Body: strings.NewReader(b), CorrelationID: "req-1"}
	}
	res, err := r.Receive(context.Background(), req())
	if err != nil || res.Duplicate || res.EventID != "evt_1" {
		t.Fatalf("first: %+v, %v", res, err)
	}
	if len(log.envs) != 1 {
		t.Fatalf("appended %d", len(log.envs))
	}
	e := log.envs[0]
	if string(e.Payload) != b || e.Priority != 1 || e.Type.Topic() != domain.TopicTransactions || e.KeyID != "k1" ||
		e.CorrelationID != "req-1" || e.Source != domain.SourceWebhook || !e.OccurredAt.Equal(now.Add(-time.Minute)) {
		t.Fatalf("envelope %+v", e)
	}
	res, err = r.Receive(context.Background(), req())
	if err != nil || !res.Duplicate || len(log.envs) != 1 {
		t.Fatalf("duplicate: %+v, %v, appended %d", res, err, len(log.envs))
	}
	gate.deny = true
	_, err = r.Receive(context.Background(), req())
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeRateLimited || rj.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("limited: %v", err)
	}
}

func TestReceiverReleasesDedupWhenAppendFails(t *testing.T) {
	t.Parallel()
	gate := &fakeGate{seen: map[string]bool{}}
	log := &fakeLog{err: errors.New("broker down")}
	r := newTestReceiver(t, gate, log)
	b := body("evt_2", "document.uploaded", now)
	_, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeAppendFailed || rj.RetryAfter <= 0 {
		t.Fatalf("err = %v", err)
	}
	if len(gate.released) != 1 || gate.released[0] != "evt_2" {
		t.Fatalf("released %v", gate.released)
	}
	log.err = nil
	res, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	if err != nil || res.Duplicate || len(log.envs) != 1 {
		t.Fatalf("retry after recovery: %+v %v appended=%d", res, err, len(log.envs))
	}
}

func TestReceiverAnswers413WhenTheLogRefusesTheRecordsSize(t *testing.T) {
	t.Parallel()
	gate := &fakeGate{seen: map[string]bool{}}
	log := &fakeLog{err: fmt.Errorf("append: %w: MESSAGE_TOO_LARGE", ErrRecordTooLarge)}
	r := newTestReceiver(t, gate, log)
	b := body("evt_big", "document.uploaded", now)
	_, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodePayloadTooLarge || rj.RetryAfter != 0 {
		t.Fatalf("err = %v, want PAYLOAD_TOO_LARGE without a retry", err)
	}
	if len(gate.released) != 1 || gate.released[0] != "evt_big" {
		t.Fatalf("released %v", gate.released)
	}
}

func TestReceiverAppendsWhenGateIsDown(t *testing.T) {
	t.Parallel()
	gate := &fakeGate{seen: map[string]bool{}, err: errors.New("dial tcp: connection refused")}
	log := &fakeLog{}
	r := newTestReceiver(t, gate, log)
	b := body("evt_3", "contact.created", now)
	res, err := r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	if err != nil || res.Degraded == nil || len(log.envs) != 1 {
		t.Fatalf("res %+v err %v appended %d", res, err, len(log.envs))
	}
}

func TestStandardWebhooksEventIDIsWebhookID(t *testing.T) {
	t.Parallel()
	sec := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	src := fakeSource{"std": {ID: "std", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeStandardWebhooks, Secrets: []domain.Secret{secret("k", sec)}}}
	log := &fakeLog{}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }}, src, &fakeGate{seen: map[string]bool{}}, log)
	if err != nil {
		t.Fatal(err)
	}
	b := body("evt_payload", "task.created", now)
	sig, _ := SignStandard([]byte(sec), "msg_42", now, []byte(b))
	h := hdr("Webhook-Id", "msg_42", "Webhook-Timestamp", fmt.Sprint(now.Unix()), "Webhook-Signature", sig)
	res, err := r.Receive(context.Background(), Request{IntegrationID: "std", ContentType: "application/json", Header: h, Body: strings.NewReader(b)})
	if err != nil || res.EventID != "msg_42" || log.envs[0].EventID != "msg_42" {
		t.Fatalf("res %+v err %v", res, err)
	}
	old := now.Add(-10 * time.Minute)
	sig, _ = SignStandard([]byte(sec), "msg_43", old, []byte(b))
	h = hdr("Webhook-Id", "msg_43", "Webhook-Timestamp", fmt.Sprint(old.Unix()), "Webhook-Signature", sig)
	_, err = r.Receive(context.Background(), Request{IntegrationID: "std", ContentType: "application/json", Header: h, Body: strings.NewReader(b)})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeTimestampOutOfWindow {
		t.Fatalf("old signed timestamp: %v", err)
	}
}

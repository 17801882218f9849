package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// pendingGate answers InFlight for its first inFlight admissions, then
// after, and records confirmations and tickets.
type pendingGate struct {
	mu        sync.Mutex
	inFlight  int
	after     Admission
	tickets   []Ticket
	confirmed []string
	// confirmErr fails every Confirm.
	confirmErr error
}

func (g *pendingGate) Admit(_ context.Context, t Ticket) (Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tickets = append(g.tickets, t)
	if g.inFlight > 0 {
		g.inFlight--
		return Admission{Allowed: true, InFlight: true}, nil
	}
	return g.after, nil
}

func (g *pendingGate) Release(context.Context, string, string) error { return nil }

func (g *pendingGate) Confirm(_ context.Context, t Ticket) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.confirmErr != nil {
		return g.confirmErr
	}
	g.confirmed = append(g.confirmed, t.EventID)
	return nil
}

func newPendingReceiver(t *testing.T, g *pendingGate, log *fakeLog) *Receiver {
	t.Helper()
	src := fakeSource{"int_a": {ID: "int_a", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeSoftPro,
		Secrets: []domain.Secret{secret("k1", "s3cret-a")}}}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }, AppendTimeout: 100 * time.Millisecond}, src, g, log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func receiveOne(ctx context.Context, r *Receiver, b string) (Result, error) {
	return r.Receive(ctx, Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
}

func TestReceiverWaitsForAnInFlightDelivery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		after         Admission
		wantDuplicate bool
		wantAppended  int
	}{
		{name: "the other delivery's append succeeds", after: Admission{Allowed: true, Duplicate: true}, wantDuplicate: true},
		{name: "the other delivery's append fails", after: Admission{Allowed: true}, wantAppended: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := &pendingGate{inFlight: 3, after: tc.after}
			log := &fakeLog{}
			res, err := receiveOne(context.Background(), newPendingReceiver(t, g, log), body("evt_1", "task.created", now))
			if err != nil || res.Duplicate != tc.wantDuplicate || len(log.envs) != tc.wantAppended {
				t.Fatalf("Receive = %+v, %v; appended %d", res, err, len(log.envs))
			}
			if len(g.tickets) != 4 || g.tickets[0].NoToken || !g.tickets[1].NoToken || g.tickets[0].PendingTTL <= 100*time.Millisecond {
				t.Fatalf("tickets %+v: want one with a token and a pending TTL beyond the append timeout, then rechecks without", g.tickets)
			}
			if wantConfirmed := tc.wantAppended; len(g.confirmed) != wantConfirmed {
				t.Fatalf("confirmed %v, want %d", g.confirmed, wantConfirmed)
			}
		})
	}
}

func TestReceiverAnswers503WhileAnotherDeliveryStaysInFlight(t *testing.T) {
	t.Parallel()
	g := &pendingGate{inFlight: 1 << 30}
	log := &fakeLog{}
	r := newPendingReceiver(t, g, log)
	start := time.Now()
	_, err := receiveOne(context.Background(), r, body("evt_1", "task.created", now))
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeAppendFailed || rj.RetryAfter <= 0 {
		t.Fatalf("err = %v, want APPEND_FAILED with a retry", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond+pendingMargin+2*time.Second {
		t.Fatalf("waited %v, longer than the pending fingerprint lives", d)
	}
	if len(log.envs) != 0 {
		t.Fatalf("appended %d", len(log.envs))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := receiveOne(ctx, r, body("evt_2", "task.created", now)); !errors.As(err, &rj) || rj.Code != CodeAppendFailed {
		t.Fatalf("cancelled wait: err = %v, want APPEND_FAILED", err)
	}
}

// hangUpGate answers InFlight to the first admission; at the recheck the
// sender hangs up and the round trip fails with the request's context
// error, as a Redis client does.
type hangUpGate struct {
	pendingGate
	cancel context.CancelFunc
}

func (g *hangUpGate) Admit(ctx context.Context, t Ticket) (Admission, error) {
	if !t.NoToken {
		return Admission{Allowed: true, InFlight: true}, nil
	}
	g.cancel()
	return Admission{}, ctx.Err()
}

// A sender that hangs up while another delivery of its event is being
// appended must not have the event appended a second time: its context
// error is not Redis being unreachable.
func TestReceiverDoesNotAppendWithoutTheGateWhenTheSenderHangsUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &hangUpGate{cancel: cancel}
	log := &fakeLog{}
	r := newPendingReceiver(t, &g.pendingGate, log)
	r.gate = g
	res, err := receiveOne(ctx, r, body("evt_1", "task.created", now))
	if err == nil || len(log.envs) != 0 {
		t.Fatalf("Receive = %+v, %v; appended %d, want a refusal and nothing appended", res, err, len(log.envs))
	}
}

// A fingerprint that cannot be confirmed after the append does not undo
// it, and is not taken for Redis being unreachable: rate limit and dedup
// ran.
func TestReceiverReportsAnUnconfirmedFingerprintApart(t *testing.T) {
	t.Parallel()
	g := &pendingGate{after: Admission{Allowed: true}, confirmErr: errors.New("i/o timeout")}
	log := &fakeLog{}
	res, err := receiveOne(context.Background(), newPendingReceiver(t, g, log), body("evt_1", "task.created", now))
	if err != nil || len(log.envs) != 1 || res.Duplicate {
		t.Fatalf("Receive = %+v, %v; appended %d", res, err, len(log.envs))
	}
	if res.Unconfirmed == nil || res.Degraded != nil {
		t.Fatalf("Unconfirmed %v, Degraded %v: want the confirmation's error as Unconfirmed only", res.Unconfirmed, res.Degraded)
	}
}

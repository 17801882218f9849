package tests

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
)

// TestSimulatorWebhooksBothSchemes drives softprosim's webhook sender
// against the service: both signature schemes, redeliveries and bad
// signatures. Every good webhook lands on the log once, every bad one is
// refused, and the projected rows carry the simulator's newest state.
func TestSimulatorWebhooksBothSchemes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, secretA := e.integration("sim-a", map[string]any{"ingestRateLimit": 1_000_000})
	stdSecret := "whsec_c2ltdWxhdG9yLXdlYmhvb2stc2VjcmV0LTEyMzQ="
	b, _ := e.integration("sim-b", map[string]any{"ingestRateLimit": 1_000_000, "signatureScheme": "standard-webhooks", "webhookSecret": stdSecret})
	s, _ := simulator(t, sim.Config{Records: 5, Epoch: time.Now().Add(-time.Minute)}, a, b)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := s.RunWebhooks(ctx, sim.WebhookConfig{
		Target:  e.URL,
		Secrets: map[string]string{a: secretA, b: stdSecret},
		Schemes: map[string]domain.SignatureScheme{b: domain.SchemeStandardWebhooks},
		Rate:    40, Duplicates: 0.25, BadSignatures: 0.15,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent < 50 || st.Duplicates == 0 || st.BadSignatures == 0 || st.Errors != 0 {
		t.Fatalf("sender stats %+v", st)
	}
	if st.ByStatus[401] < st.BadSignatures || st.ByStatus[200]+st.ByStatus[401] != st.Sent+st.Duplicates {
		t.Fatalf("answers %v for %d sent, %d duplicates, %d badly signed", st.ByStatus, st.Sent, st.Duplicates, st.BadSignatures)
	}
	good := 0
	for _, topic := range domain.EventTopics {
		good += len(e.records(topic))
	}
	// Each well-signed webhook is on the log exactly once: redeliveries of
	// it were answered as duplicates, badly signed ones appended nothing.
	if good != st.Sent-st.BadSignatures {
		t.Fatalf("%d events on the log, want %d (sent %d, badly signed %d)", good, st.Sent-st.BadSignatures, st.Sent, st.BadSignatures)
	}
	db := e.db()
	eventually(t, 30*time.Second, func() string {
		if got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE status = 'COMPLETED'`); got != strconv.Itoa(good) {
			return "projected " + got + " of " + strconv.Itoa(good)
		}
		return ""
	})
}

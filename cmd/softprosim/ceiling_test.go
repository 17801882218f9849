package main

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// TestLoadAgainstCeiling runs the load generator against the ceiling
// handler and checks every request is accounted for as the handler answers.
func TestLoadAgainstCeiling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		scheme domain.SignatureScheme
		rate   float64
	}{
		{name: "softpro flat out", scheme: domain.SchemeSoftPro},
		{name: "standard-webhooks flat out", scheme: domain.SchemeStandardWebhooks},
		{name: "softpro fixed rate", scheme: domain.SchemeSoftPro, rate: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(newCeilingHandler(ceilingConfig{
				Integrations: 4, IDPrefix: "int-", SecretPrefix: "sec-", Scheme: string(tt.scheme),
			}))
			t.Cleanup(srv.Close)

			// Five integrations against a server that knows four: every
			// fifth request is for an unknown integration.
			cfg := loadConfig{
				URL: srv.URL, Integrations: 5, IDPrefix: "int-", SecretPrefix: "sec-", Scheme: string(tt.scheme),
				Rate: tt.rate, Count: 500, Concurrency: 8, Seed: 11, DupFraction: 0.1, BadSigFraction: 0.1,
				Timeout: 5 * time.Second,
			}
			cfg.setDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatalf("config: %v", err)
			}
			res, err := runLoad(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatalf("runLoad: %v", err)
			}
			notFound := res.ErrorsByCode["INTEGRATION_NOT_FOUND"]
			// Redeliveries go where their original went, so the share is
			// about, not exactly, a fifth.
			if res.Sent != 500 || notFound < 70 || notFound > 130 || res.ErrorsByStatus["404"] != notFound {
				t.Errorf("sent %d, not found %d (status %v), want 500 and about 100", res.Sent, notFound, res.ErrorsByStatus)
			}
			if res.DupSent == 0 || res.BadSigSent == 0 {
				t.Fatalf("no redeliveries (%d) or bad signatures (%d) sent", res.DupSent, res.BadSigSent)
			}
			if res.BadSigAccepted != 0 || res.ErrorsByCode["SIGNATURE_INVALID"]+notFound != res.Sent-res.Accepted {
				t.Errorf("rejections %v do not add up: sent %d, accepted %d", res.ErrorsByCode, res.Sent, res.Accepted)
			}
			// The ceiling has no dedup: redeliveries come back as new.
			if res.Duplicates != 0 || res.DupDetected != 0 {
				t.Errorf("duplicates %d, want 0 from a server without dedup", res.Duplicates)
			}
			if len(res.TransportErrors) != 0 || res.P99Ms <= 0 || res.AcceptedPerSec <= 0 {
				t.Errorf("transport errors %v, p99 %v, accepted/s %v", res.TransportErrors, res.P99Ms, res.AcceptedPerSec)
			}
			wantMode := modeFlatOut
			if tt.rate > 0 {
				wantMode = modeFixedRate
			}
			if res.Mode != wantMode {
				t.Errorf("mode = %q, want %q", res.Mode, wantMode)
			}
		})
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{name: "bare port", in: "8081", want: "127.0.0.1:8081"},
		{name: "host and port", in: "0.0.0.0:9000", want: "0.0.0.0:9000"},
		{name: "any port", in: "127.0.0.1:0", want: "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := listenAddr(tt.in); got != tt.want {
				t.Errorf("listenAddr(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

func TestMakeBodyEveryType(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for _, typ := range domain.WebhookTypes {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, 7))
			body, err := makeBody(rng, typ, "evt_test_1", ts)
			if err != nil {
				t.Fatalf("makeBody: %v", err)
			}
			if !json.Valid(body) {
				t.Fatalf("body is not valid JSON: %s", body)
			}
			p, err := ingest.ParsePayload(body)
			if err != nil {
				t.Fatalf("ParsePayload: %v\n%s", err, body)
			}
			if p.ID != "evt_test_1" || p.Type != string(typ) || !p.Timestamp.Equal(ts) {
				t.Errorf("payload = %+v, want id evt_test_1, type %s, timestamp %s", p, typ, ts)
			}
			var env struct {
				Data map[string]any `json:"data"`
			}
			if err := json.Unmarshal(body, &env); err != nil || len(env.Data) < 5 || env.Data["id"] == "" {
				t.Errorf("data is not a populated object (err %v): %s", err, body)
			}
			if len(body) < 400 || len(body) > 4096 {
				t.Errorf("body is %d bytes, want a realistic 400–4096", len(body))
			}
		})
	}
}

func TestTypeWeightsCoverEveryWebhookType(t *testing.T) {
	t.Parallel()
	seen := map[domain.EventType]bool{}
	for _, tw := range typeWeights {
		if tw.w <= 0 {
			t.Errorf("%s has weight %d, want positive", tw.t, tw.w)
		}
		seen[tw.t] = true
	}
	for _, typ := range domain.WebhookTypes {
		if !seen[typ] {
			t.Errorf("%s is never generated", typ)
		}
	}
	if len(seen) != len(domain.WebhookTypes) {
		t.Errorf("typeWeights has %d types, want the %d webhook types", len(seen), len(domain.WebhookTypes))
	}
}

func TestBuildPool(t *testing.T) {
	t.Parallel()
	for _, scheme := range []domain.SignatureScheme{domain.SchemeSoftPro, domain.SchemeStandardWebhooks} {
		t.Run(string(scheme), func(t *testing.T) {
			t.Parallel()
			const integrations, gap = 7, 40
			start := time.Now()
			cfg := poolConfig{
				size: 3000, integrations: integrations, secretPrefix: "s-", scheme: scheme,
				seed: 3, runID: "r1", start: start, rate: 1000,
				dupFraction: 0.1, badSigFraction: 0.05, dupGap: gap,
			}
			pool, err := buildPool(context.Background(), cfg)
			if err != nil {
				t.Fatalf("buildPool: %v", err)
			}
			if len(pool) != cfg.size {
				t.Fatalf("pool has %d requests, want %d", len(pool), cfg.size)
			}
			firstSeen := map[string]int{}
			types := map[string]bool{}
			counts := map[kind]int{}
			for k, p := range pool {
				counts[p.kind]++
				pl, err := ingest.ParsePayload(p.body)
				if err != nil {
					t.Fatalf("request %d: %v", k, err)
				}
				types[pl.Type] = true
				h := headersOf(p)
				secret := []domain.Secret{{KeyID: "k", Value: secretFor(scheme, "s-", int(p.integration))}}
				_, verr := ingest.Verify(scheme, h, p.body, secret)
				switch p.kind {
				case kindFresh:
					if verr != nil {
						t.Fatalf("request %d: fresh request does not verify: %v", k, verr)
					}
					if _, dup := firstSeen[pl.ID]; dup {
						t.Fatalf("request %d: fresh event id %s repeats", k, pl.ID)
					}
					firstSeen[pl.ID] = k
					if d := pl.Timestamp.Sub(start); d < 0 || d > 3*time.Second+time.Millisecond {
						t.Errorf("request %d: timestamp %s is %s after start, want its send time", k, pl.Timestamp, d)
					}
				case kindDup:
					orig, ok := firstSeen[pl.ID]
					if !ok || orig > k-gap || verr != nil {
						t.Fatalf("request %d: redelivery of %s must repeat a verified event at least %d earlier (original %d, ok %v, verify %v)", k, pl.ID, gap, orig, ok, verr)
					}
				case kindBadSig:
					if !errors.Is(verr, ingest.ErrSignatureInvalid) {
						t.Fatalf("request %d: bad signature verified as %v, want ErrSignatureInvalid", k, verr)
					}
				}
			}
			if len(types) != len(domain.WebhookTypes) {
				t.Errorf("pool holds %d event types, want all %d", len(types), len(domain.WebhookTypes))
			}
			if counts[kindDup] < 200 || counts[kindBadSig] < 100 {
				t.Errorf("kinds = %v, want about 10%% redeliveries and 5%% bad signatures of 3000", counts)
			}
		})
	}
}

// headersOf renders the signature headers send would put on p.
func headersOf(p pooled) http.Header {
	h := http.Header{}
	if p.webhookID != "" {
		h.Set("Webhook-Id", p.webhookID)
		h.Set("Webhook-Timestamp", strconv.FormatInt(p.ts, 10))
		h.Set("Webhook-Signature", p.sig)
	} else {
		h.Set("X-Softpro-Signature", p.sig)
	}
	return h
}

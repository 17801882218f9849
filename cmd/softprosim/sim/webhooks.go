package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// WebhookConfig makes the simulator send a signed webhook for every change
// it makes, the way SoftPro would.
type WebhookConfig struct {
	// Target is softprohub's base URL; webhooks go to
	// Target + /api/webhooks/softpro/{tenant}.
	Target string
	// Secrets are each tenant's webhook secret; Schemes their signature
	// scheme (default softpro). Tenants without a secret get no webhooks.
	Secrets map[string]string
	Schemes map[string]domain.SignatureScheme
	// Rate is changes (and so webhooks) per second; default 10.
	Rate float64
	// Duplicates, Late and BadSignatures are the fractions of webhooks sent
	// twice, held back and sent after LateBy more webhooks (out of order),
	// and sent with a wrong signature.
	Duplicates    float64
	Late          float64
	BadSignatures float64
	LateBy        int
	// Client defaults to a client with a 10 s timeout.
	Client *http.Client
}

// WebhookStats count what was sent and how softprohub answered.
type WebhookStats struct {
	Sent          int            `json:"sent"`
	Duplicates    int            `json:"duplicates"`
	Late          int            `json:"late"`
	BadSignatures int            `json:"badSignatures"`
	ByStatus      map[int]int    `json:"byStatus"`
	Errors        int            `json:"errors"`
	ByType        map[string]int `json:"byType"`
}

// Webhook is one signed request.
type Webhook struct {
	Tenant string
	Body   []byte
	Header http.Header
}

// WebhookFor renders the webhook SoftPro would send for a change: the
// record as data, the change's updated_at as timestamp.
func WebhookFor(c Change, eventID string) []byte {
	b, _ := json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{eventID, string(c.Event), c.Record.UpdatedAt.UTC().Format(time.RFC3339Nano), c.Record.JSON()})
	return b
}

// Sign signs body under scheme with secret (a whsec_ secret for
// standard-webhooks) and returns the request headers.
func Sign(scheme domain.SignatureScheme, secret, eventID string, body []byte, now time.Time) (http.Header, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if scheme == domain.SchemeStandardWebhooks {
		sig, err := ingest.SignStandard([]byte(secret), eventID, now, body)
		if err != nil {
			return nil, err
		}
		h.Set("webhook-id", eventID)
		h.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
		h.Set("webhook-signature", sig)
		return h, nil
	}
	h.Set("X-Softpro-Signature", ingest.SignSoftPro([]byte(secret), body))
	return h, nil
}

// RunWebhooks changes a random record Rate times a second and sends the
// webhook for each change, until ctx ends. It returns what it sent.
func (s *Sim) RunWebhooks(ctx context.Context, cfg WebhookConfig) (WebhookStats, error) {
	if cfg.Target == "" {
		return WebhookStats{}, errors.New("webhooks: target is required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.LateBy <= 0 {
		cfg.LateBy = 5
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	st := WebhookStats{ByStatus: map[int]int{}, ByType: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	send := func(w Webhook) {
		defer wg.Done()
		// A send under way when ctx ends still finishes (within the client's
		// timeout), so every counted webhook got an answer.
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost,
			strings.TrimRight(cfg.Target, "/")+"/api/webhooks/softpro/"+w.Tenant, bytes.NewReader(w.Body))
		if err != nil {
			return
		}
		req.Header = w.Header
		resp, err := cfg.Client.Do(req)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			st.Errors++
			return
		}
		_ = resp.Body.Close()
		st.ByStatus[resp.StatusCode]++
	}
	rng := rand.New(rand.NewPCG(s.cfg.Seed, 0xbeef))
	var late []Webhook
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return st, nil
		case <-tick.C:
		}
		c, ok := s.ModifyRandom()
		secret := cfg.Secrets[c.Tenant]
		if !ok || secret == "" {
			continue
		}
		id := fmt.Sprintf("evt_sim_%d_%d", s.cfg.Seed, n)
		body := WebhookFor(c, id)
		signWith := secret
		bad := rng.Float64() < cfg.BadSignatures
		if bad {
			signWith = "wrong-" + secret
			if strings.HasPrefix(secret, "whsec_") {
				signWith = "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
			}
		}
		h, err := Sign(cfg.Schemes[c.Tenant], signWith, id, body, time.Now())
		if err != nil {
			return st, err
		}
		w := Webhook{Tenant: c.Tenant, Body: body, Header: h}
		mu.Lock()
		st.Sent++
		st.ByType[string(c.Event)]++
		if bad {
			st.BadSignatures++
		}
		mu.Unlock()
		switch r := rng.Float64(); {
		case r < cfg.Late:
			mu.Lock()
			st.Late++
			mu.Unlock()
			late = append(late, w)
			continue
		case r < cfg.Late+cfg.Duplicates:
			mu.Lock()
			st.Duplicates++
			mu.Unlock()
			wg.Add(1)
			go send(Webhook{Tenant: w.Tenant, Body: w.Body, Header: w.Header.Clone()})
		}
		wg.Add(1)
		go send(w)
		if len(late) > 0 && n%cfg.LateBy == 0 {
			wg.Add(1)
			go send(late[0])
			late = late[1:]
		}
	}
}

package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// kind says what a pooled request tests.
type kind uint8

const (
	// kindFresh is a new event, correctly signed: the service must accept it.
	kindFresh kind = iota
	// kindDup repeats an earlier request byte for byte, as SoftPro does when
	// it redelivers: the service must answer 200 with "duplicate":true.
	kindDup
	// kindBadSig is a new event signed with the wrong secret: the service
	// must answer 401 SIGNATURE_INVALID.
	kindBadSig
)

// pooled is one pre-generated, pre-signed webhook request. It is read-only
// once the pool is built; duplicates share their original's bytes.
type pooled struct {
	body []byte
	// sig is the x-softpro-signature value, or the webhook-signature value
	// under standard-webhooks.
	sig string
	// webhookID and ts are the webhook-id and webhook-timestamp headers
	// (standard-webhooks only).
	webhookID   string
	ts          int64
	integration int32
	kind        kind
}

// poolConfig describes the requests to pre-generate.
type poolConfig struct {
	size         int
	integrations int
	secretPrefix string
	scheme       domain.SignatureScheme
	seed         uint64
	// runID makes event ids unique per run.
	runID string
	// start stamps the events; with rate > 0 event k is stamped
	// start + k/rate, its intended send time, so long fixed-rate runs stay
	// inside the server's replay window.
	start time.Time
	rate  float64
	// dupFraction and badSigFraction are the shares of requests that are
	// redeliveries and bad signatures.
	dupFraction    float64
	badSigFraction float64
	// dupGap is how many positions back a redelivery's original is at least,
	// so that the original has most likely been answered already.
	dupGap int
}

// secretFor is integration i's webhook secret under scheme: the prefix plus
// i, and for standard-webhooks that string base64-encoded behind "whsec_".
func secretFor(scheme domain.SignatureScheme, prefix string, i int) []byte {
	raw := prefix + strconv.Itoa(i)
	if scheme == domain.SchemeStandardWebhooks {
		return []byte("whsec_" + base64.StdEncoding.EncodeToString([]byte(raw)))
	}
	return []byte(raw)
}

// eventID is the id of the k-th event of a run.
func eventID(runID string, k int) string {
	return "evt_" + runID + "_" + strconv.Itoa(k)
}

// buildPool generates and signs cfg.size requests on all cores. The content
// of request k depends only on the seed and k, not on scheduling.
func buildPool(ctx context.Context, cfg poolConfig) ([]pooled, error) {
	if cfg.size <= 0 || cfg.integrations <= 0 {
		return nil, nil
	}
	pool := make([]pooled, cfg.size)
	kinds := planKinds(cfg)

	secrets := make([][]byte, cfg.integrations)
	wrong := make([][]byte, cfg.integrations)
	for i := range secrets {
		secrets[i] = secretFor(cfg.scheme, cfg.secretPrefix, i)
		wrong[i] = secretFor(cfg.scheme, "not-"+cfg.secretPrefix, i)
	}

	workers := runtime.GOMAXPROCS(0)
	g, ctx := errgroup.WithContext(ctx)
	for w := range workers {
		g.Go(func() error {
			src := rand.NewPCG(0, 0)
			rng := rand.New(src)
			for k := w; k < cfg.size; k += workers {
				if k%4096 == w && ctx.Err() != nil {
					return ctx.Err()
				}
				if kinds[k] == kindDup {
					continue
				}
				src.Seed(cfg.seed, uint64(k))
				integ := k % cfg.integrations
				ts := cfg.start
				if cfg.rate > 0 {
					ts = ts.Add(time.Duration(float64(k) / cfg.rate * float64(time.Second)))
				}
				id := eventID(cfg.runID, k)
				body, err := makeBody(rng, pickType(rng), id, ts)
				if err != nil {
					return err
				}
				key := secrets[integ]
				if kinds[k] == kindBadSig {
					key = wrong[integ]
				}
				p := pooled{body: body, integration: int32(integ), kind: kinds[k]}
				if cfg.scheme == domain.SchemeStandardWebhooks {
					p.webhookID, p.ts = id, ts.Unix()
					p.sig, err = ingest.SignStandard(key, id, ts, body)
					if err != nil {
						return fmt.Errorf("sign %s: %w", id, err)
					}
				} else {
					p.sig = ingest.SignSoftPro(key, body)
				}
				pool[k] = p
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("build request pool: %w", err)
	}
	for k, kd := range kinds {
		if kd == kindDup {
			pool[k] = pool[dupSource(kinds, k, cfg.dupGap, cfg.seed)]
			pool[k].kind = kindDup
		}
	}
	return pool, nil
}

// planKinds decides, deterministically from the seed, which requests are
// redeliveries and which carry bad signatures. A redelivery needs a fresh
// original at least dupGap positions earlier; before that every request is
// fresh or bad.
func planKinds(cfg poolConfig) []kind {
	kinds := make([]kind, cfg.size)
	if cfg.dupFraction <= 0 && cfg.badSigFraction <= 0 {
		return kinds
	}
	rng := rand.New(rand.NewPCG(cfg.seed, 1<<63))
	firstFresh := -1
	for k := range kinds {
		r := rng.Float64()
		switch {
		case r < cfg.dupFraction && firstFresh >= 0 && k-cfg.dupGap > firstFresh:
			kinds[k] = kindDup
		case r >= cfg.dupFraction && r < cfg.dupFraction+cfg.badSigFraction:
			kinds[k] = kindBadSig
		default:
			if firstFresh < 0 {
				firstFresh = k
			}
		}
	}
	return kinds
}

// dupSource picks the fresh request that redelivery k repeats: a seeded
// choice among positions at least gap before k, moved back to the nearest
// fresh one. planKinds guarantees there is one.
func dupSource(kinds []kind, k, gap int, seed uint64) int {
	rng := rand.New(rand.NewPCG(seed^0x5eed, uint64(k)))
	j := rng.IntN(k - gap)
	for j > 0 && kinds[j] != kindFresh {
		j--
	}
	for kinds[j] != kindFresh {
		j++
	}
	return j
}

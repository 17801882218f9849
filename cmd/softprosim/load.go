package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/domain"
)

// Run modes, as reported in Result.Mode.
const (
	modeFlatOut   = "flat-out"
	modeFixedRate = "fixed-rate"
)

// Default concurrency per mode: flat out it is the number of requests kept
// in flight; at a fixed rate it only caps the in-flight requests, so it is
// generous enough never to be the bottleneck of an open-loop run.
const (
	defaultFlatConcurrency  = 64
	defaultFixedConcurrency = 256
)

// autoPoolPerSecond sizes the pre-generated pool of a timed flat-out run:
// duration × this many requests, comfortably above the ~30 000/s a bare
// server answers on a two-core machine. A request takes about 2 KiB, so the
// automatic size stops at autoPoolMax (about 4 GiB).
const (
	autoPoolPerSecond = 50_000
	autoPoolMax       = 2_000_000
)

// replayWindow is the server's signature time window; event timestamps of
// a flat-out run are stamped at the run start and must stay inside it.
const replayWindow = 5 * time.Minute

// loadConfig is the load command's configuration.
type loadConfig struct {
	URL            string
	Integrations   int
	IDPrefix       string
	SecretPrefix   string
	Scheme         string
	Rate           float64
	Duration       time.Duration
	Count          int
	Concurrency    int
	Seed           uint64
	DupFraction    float64
	BadSigFraction float64
	Pool           int
	Timeout        time.Duration
	RunID          string
	Progress       time.Duration
}

// setDefaults fills the values that depend on other flags.
func (c *loadConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = defaultFlatConcurrency
		if c.Rate > 0 {
			c.Concurrency = defaultFixedConcurrency
		}
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("%08x", rand.Uint32())
	}
	if c.Pool == 0 {
		c.Pool = c.total()
	}
}

// total is how many requests the run sends at most: --count, or what the
// duration needs at the fixed rate, or the flat-out allowance.
func (c *loadConfig) total() int {
	switch {
	case c.Count > 0:
		return c.Count
	case c.Rate > 0:
		return int(math.Ceil(c.Rate * c.Duration.Seconds()))
	default:
		return min(int(math.Ceil(c.Duration.Seconds()*autoPoolPerSecond)), autoPoolMax)
	}
}

// Validate reports every problem with the configuration.
func (c loadConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--url %q must be an http(s) base URL", c.URL))
	}
	if c.Integrations < 1 {
		errs = append(errs, errors.New("--integrations must be at least 1"))
	}
	if !domain.SignatureScheme(c.Scheme).Valid() {
		errs = append(errs, fmt.Errorf("--scheme must be %q or %q", domain.SchemeSoftPro, domain.SchemeStandardWebhooks))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if c.Count < 0 {
		errs = append(errs, errors.New("--count must not be negative"))
	}
	if c.Count == 0 && c.Duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive when --count is not set"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("--concurrency must be at least 1"))
	}
	if c.DupFraction < 0 || c.BadSigFraction < 0 || c.DupFraction+c.BadSigFraction > 1 {
		errs = append(errs, errors.New("--dup-fraction and --bad-sig-fraction must be non-negative and sum to at most 1"))
	}
	if c.Pool < 1 {
		errs = append(errs, errors.New("--pool must be at least 1"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("--timeout must be positive"))
	}
	if strings.ContainsAny(c.RunID, "/ ") {
		errs = append(errs, errors.New("--run-id must not contain '/' or spaces"))
	}
	return errors.Join(errs...)
}

func newLoadCmd() *cobra.Command {
	var cfg loadConfig
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Send signed SoftPro webhooks to a service and report throughput and latency",
		Long: `load sends signed SoftPro webhooks to <url>/api/webhooks/softpro/<id-prefix><i>.

Every request is generated and signed before the timed phase starts, so the
generator spends its CPU on HTTP only. With --rate 0 it runs flat out with
--concurrency requests in flight (closed loop). With --rate R it is open
loop: request k is due at start + k/R whatever the answers, and its latency
is measured from that intended time, so a stalled server shows up in the
percentiles instead of silently lowering the rate.

The last line of output is "RESULT {json}" for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.setDefaults()
			if err := cfg.Validate(); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			res, err := runLoad(cmd.Context(), cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return res.print(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "service base URL")
	f.IntVar(&cfg.Integrations, "integrations", 50, "number of integrations; events go round-robin to <id-prefix>0 … <id-prefix>N-1")
	f.StringVar(&cfg.IDPrefix, "id-prefix", "bench-", "integration id prefix")
	f.StringVar(&cfg.SecretPrefix, "secret-prefix", "bench-secret-", "integration i's secret is <secret-prefix>i (standard-webhooks: whsec_ + base64 of it)")
	f.StringVar(&cfg.Scheme, "scheme", string(domain.SchemeSoftPro), "signature scheme: softpro or standard-webhooks")
	f.Float64Var(&cfg.Rate, "rate", 0, "events per second, open loop; 0 = flat out")
	f.DurationVar(&cfg.Duration, "duration", 20*time.Second, "how long to send (ignored when --count is set)")
	f.IntVar(&cfg.Count, "count", 0, "send exactly this many requests instead of running for --duration")
	f.IntVar(&cfg.Concurrency, "concurrency", 0, fmt.Sprintf("requests in flight flat out, or the in-flight cap at a fixed rate (default %d flat out, %d at a fixed rate)", defaultFlatConcurrency, defaultFixedConcurrency))
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of payload contents and of which requests are redeliveries or bad signatures")
	f.Float64Var(&cfg.DupFraction, "dup-fraction", 0, "share of requests that redeliver an earlier event unchanged")
	f.Float64Var(&cfg.BadSigFraction, "bad-sig-fraction", 0, "share of requests signed with the wrong secret")
	f.IntVar(&cfg.Pool, "pool", 0, fmt.Sprintf("requests to pre-generate for a timed flat-out run (default %d per second of --duration, at most %d); other runs generate exactly what they send", autoPoolPerSecond, autoPoolMax))
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	f.StringVar(&cfg.RunID, "run-id", "", "nonce in every event id, unique per run (default random)")
	f.DurationVar(&cfg.Progress, "progress", 5*time.Second, "interval of progress lines on stderr; 0 = none")
	return cmd
}

// job is one request due at a given time.
type job struct {
	k   int
	due time.Time
}

// runner sends a pool of requests and tallies the answers.
type runner struct {
	cfg    loadConfig
	client *http.Client
	urls   []string
	pool   []pooled

	answered atomic.Int64
	accepted atomic.Int64
}

// runLoad builds the pool, runs the timed phase and returns its result.
// Cancelling ctx stops the run early; the result covers what was answered.
func runLoad(ctx context.Context, cfg loadConfig, log io.Writer) (Result, error) {
	start := time.Now()
	size := cfg.total()
	if cfg.Count == 0 && cfg.Rate == 0 {
		size = cfg.Pool
		if cfg.Duration > replayWindow-30*time.Second {
			fmt.Fprintf(log, "warning: events are stamped at the run start; after %s the server will reject them as out of window\n", replayWindow)
		}
	}
	fmt.Fprintf(log, "run %s starts %s; generating and signing %d requests\n", cfg.RunID, start.UTC().Format(time.RFC3339), size)
	pool, err := buildPool(ctx, poolConfig{
		size: size, integrations: cfg.Integrations, secretPrefix: cfg.SecretPrefix,
		scheme: domain.SignatureScheme(cfg.Scheme), seed: cfg.Seed, runID: cfg.RunID,
		start: start, rate: cfg.Rate,
		dupFraction: cfg.DupFraction, badSigFraction: cfg.BadSigFraction, dupGap: 4 * cfg.Concurrency,
	})
	if err != nil {
		return Result{}, err
	}
	fmt.Fprintf(log, "pool ready in %s\n", time.Since(start).Round(time.Millisecond))

	r := &runner{cfg: cfg, client: newClient(cfg), pool: pool}
	defer r.client.CloseIdleConnections()
	base := strings.TrimRight(cfg.URL, "/") + "/api/webhooks/softpro/"
	for i := range cfg.Integrations {
		r.urls = append(r.urls, base+url.PathEscape(cfg.IDPrefix+strconv.Itoa(i)))
	}

	stopProgress := r.reportProgress(log)
	var (
		total     *tally
		elapsed   time.Duration
		exhausted bool
	)
	if cfg.Rate > 0 {
		total, elapsed = r.fixedRate(ctx)
	} else {
		total, elapsed, exhausted = r.flatOut(ctx)
	}
	stopProgress()

	res := total.result(elapsed)
	res.Target, res.Scheme, res.RunID = cfg.URL, cfg.Scheme, cfg.RunID
	res.Rate, res.Concurrency, res.Integrations = cfg.Rate, cfg.Concurrency, cfg.Integrations
	res.Mode = modeFlatOut
	if cfg.Rate > 0 {
		res.Mode = modeFixedRate
	}
	res.PoolExhausted = exhausted
	return res, nil
}

// newClient is a keep-alive client that holds an idle connection for every
// worker, so connections are reused rather than re-dialled.
func newClient(cfg loadConfig) *http.Client {
	return &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        cfg.Concurrency + 16,
			MaxIdleConnsPerHost: cfg.Concurrency + 16,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// flatOut keeps cfg.Concurrency requests in flight until the duration
// ends, the count is sent, the pool runs out or ctx is cancelled.
// exhausted reports the pool running out before a timed run's end.
func (r *runner) flatOut(ctx context.Context) (total *tally, elapsed time.Duration, exhausted bool) {
	n := len(r.pool)
	timed := r.cfg.Count == 0
	var (
		next    atomic.Int64
		ranOut  atomic.Bool
		wg      sync.WaitGroup
		tallies = make([]*tally, r.cfg.Concurrency)
	)
	start := time.Now()
	deadline := start.Add(r.cfg.Duration)
	for w := range tallies {
		t := newTally()
		tallies[w] = t
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= n {
					ranOut.Store(timed)
					return
				}
				now := time.Now()
				if timed && now.After(deadline) {
					return
				}
				r.send(ctx, &r.pool[k], now, &buf, t)
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	return mergeTallies(tallies), elapsed, ranOut.Load()
}

// fixedRate schedules request k at start + k/rate and hands it to a worker;
// the queue between them is unbounded, so a slow target never delays the
// schedule (open loop). Latency counts from the scheduled time.
func (r *runner) fixedRate(ctx context.Context) (*tally, time.Duration) {
	n := len(r.pool)
	jobs := make(chan job, n)
	tallies := make([]*tally, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range tallies {
		t := newTally()
		tallies[w] = t
		wg.Go(func() {
			var buf bytes.Buffer
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				t.maxSendLag = max(t.maxSendLag, time.Since(j.due))
				r.send(ctx, &r.pool[j.k], j.due, &buf, t)
			}
		})
	}

	start := time.Now()
	interval := float64(time.Second) / r.cfg.Rate
	timer := time.NewTimer(0)
	<-timer.C
schedule:
	for k := range n {
		due := start.Add(time.Duration(float64(k) * interval))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break schedule
			}
		}
		jobs <- job{k: k, due: due}
	}
	close(jobs)
	wg.Wait()
	return mergeTallies(tallies), time.Since(start)
}

// contentType is shared by every request; the transport never mutates it.
var contentType = []string{"application/json"}

// send posts p, reads the whole answer and records it against intended.
// A request cut short by ctx is not counted: it was never answered or
// failed on its own.
func (r *runner) send(ctx context.Context, p *pooled, intended time.Time, buf *bytes.Buffer, t *tally) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.urls[p.integration], bytes.NewReader(p.body))
	if err != nil {
		t.fail(p.kind, err)
		return
	}
	req.Header["Content-Type"] = contentType
	if p.webhookID != "" {
		req.Header["Webhook-Id"] = []string{p.webhookID}
		req.Header["Webhook-Timestamp"] = []string{strconv.FormatInt(p.ts, 10)}
		req.Header["Webhook-Signature"] = []string{p.sig}
	} else {
		req.Header["X-Softpro-Signature"] = []string{p.sig}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			t.fail(p.kind, err)
			r.answered.Add(1)
		}
		return
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		if ctx.Err() == nil {
			t.fail(p.kind, err)
			r.answered.Add(1)
		}
		return
	}
	t.observe(p.kind, resp.StatusCode, buf.Bytes(), time.Since(intended))
	r.answered.Add(1)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		r.accepted.Add(1)
	}
}

// reportProgress prints answered and accepted counts to log every
// cfg.Progress until the returned stop is called.
func (r *runner) reportProgress(log io.Writer) (stop func()) {
	if r.cfg.Progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(r.cfg.Progress)
		defer tick.Stop()
		start := time.Now()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				a := r.answered.Load()
				fmt.Fprintf(log, "%6.1fs  answered %d (%.0f/s)  accepted %d\n",
					time.Since(start).Seconds(), a, float64(a-last)/r.cfg.Progress.Seconds(), r.accepted.Load())
				last = a
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func mergeTallies(ts []*tally) *tally {
	total := newTally()
	for _, t := range ts {
		total.merge(t)
	}
	return total
}

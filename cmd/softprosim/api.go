package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
)

// serveConfig is softprosim serve's flags.
type serveConfig struct {
	addr         string
	seed         uint64
	tenants      []string
	integrations int
	records      int
	rateLimit    int
	rateWindow   time.Duration
	faults       sim.Faults
	changeRate   float64
	hook         sim.WebhookConfig
	secret       string
	scheme       string
}

func (c *serveConfig) tenantIDs() []string {
	if len(c.tenants) > 0 {
		return c.tenants
	}
	ids := make([]string, c.integrations)
	for i := range ids {
		ids[i] = fmt.Sprintf("sim-%03d", i+1)
	}
	return ids
}

// Validate reports every problem with the flags.
func (c serveConfig) Validate() error {
	var errs []error
	if len(c.tenants) == 0 && c.integrations < 1 {
		errs = append(errs, errors.New("--integrations must be at least 1 (or give --tenants)"))
	}
	if c.records < 0 {
		errs = append(errs, errors.New("--records must not be negative"))
	}
	if c.rateLimit < 0 || c.rateWindow <= 0 {
		errs = append(errs, errors.New("--rate-limit must not be negative and --rate-window must be positive"))
	}
	for name, f := range map[string]float64{"--fault-429": c.faults.RateLimited, "--fault-5xx": c.faults.ServerErrors,
		"--fault-slow": c.faults.Slow, "--duplicates": c.hook.Duplicates, "--late": c.hook.Late, "--bad-signatures": c.hook.BadSignatures} {
		if f < 0 || f > 1 {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1", name))
		}
	}
	if c.hook.Target != "" && c.secret == "" {
		errs = append(errs, errors.New("--webhook-target needs --webhook-secret"))
	}
	if s := domain.SignatureScheme(c.scheme); !s.Valid() {
		errs = append(errs, fmt.Errorf("--scheme %q is not softpro or standard-webhooks", c.scheme))
	}
	return errors.Join(errs...)
}

func newServeCmd() *cobra.Command {
	cfg := serveConfig{}
	cmd := &cobra.Command{
		Use:     "serve",
		Aliases: []string{"api"},
		Short:   "Serve the SoftPro API over seeded data; optionally change records and send their webhooks",
		Long: `serve runs the SoftPro API of docs/softpro-api.md for N tenants (integration ids
sim-001.. or --tenants) over deterministic, seeded records of every type, with a
sliding-window quota, injectable 429s, 5xx, slow answers and pagination edge cases.
GET /_sim/tenants lists each tenant's base URL and credentials; GET /_sim/stats the
requests seen; PUT /_sim/faults changes the faults.

With --change-rate it changes random records that many times a second; with
--webhook-target (and --webhook-secret) it also sends SoftPro's signed webhook
for each change, with the given fractions of duplicates, late deliveries and
bad signatures.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			return runServe(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.addr, "addr", "127.0.0.1:8090", "listen address")
	f.Uint64Var(&cfg.seed, "seed", 1, "seed of every generated value")
	f.StringSliceVar(&cfg.tenants, "tenants", nil, "integration ids to serve (default sim-001..sim-N)")
	f.IntVar(&cfg.integrations, "integrations", 3, "number of tenants when --tenants is not given")
	f.IntVar(&cfg.records, "records", 1000, "records of each type per tenant")
	f.IntVar(&cfg.rateLimit, "rate-limit", 100, "requests per --rate-window per tenant (0: off)")
	f.DurationVar(&cfg.rateWindow, "rate-window", time.Minute, "quota window (sliding)")
	f.Float64Var(&cfg.faults.RateLimited, "fault-429", 0, "fraction of requests answered 429 regardless of quota")
	f.DurationVar(&cfg.faults.RetryAfter, "retry-after", time.Second, "Retry-After of injected 429s")
	f.Float64Var(&cfg.faults.ServerErrors, "fault-5xx", 0, "fraction of requests answered 500/502/503")
	f.Float64Var(&cfg.faults.Slow, "fault-slow", 0, "fraction of requests answered slowly")
	f.DurationVar(&cfg.faults.SlowDelay, "slow-delay", 2*time.Second, "delay of slow answers")
	f.BoolVar(&cfg.faults.Edges, "edges", false, "pagination edge cases: empty and short pages, repeated records")
	f.Float64Var(&cfg.changeRate, "change-rate", 0, "record changes per second (0: data stays as seeded)")
	f.StringVar(&cfg.hook.Target, "webhook-target", "", "softprohub base URL to send webhooks for changes to")
	f.StringVar(&cfg.secret, "webhook-secret", "", "webhook secret of every tenant (whsec_… for standard-webhooks)")
	f.StringVar(&cfg.scheme, "scheme", string(domain.SchemeSoftPro), "signature scheme: softpro or standard-webhooks")
	f.Float64Var(&cfg.hook.Duplicates, "duplicates", 0, "fraction of webhooks sent twice")
	f.Float64Var(&cfg.hook.Late, "late", 0, "fraction of webhooks delivered late (out of order)")
	f.Float64Var(&cfg.hook.BadSignatures, "bad-signatures", 0, "fraction of webhooks with a wrong signature")
	return cmd
}

func runServe(ctx context.Context, cfg serveConfig, out io.Writer) error {
	ids := cfg.tenantIDs()
	s := sim.New(sim.Config{Seed: cfg.seed, Tenants: ids, Records: cfg.records,
		RateLimit: cfg.rateLimit, RateWindow: cfg.rateWindow, Faults: cfg.faults})
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "softprosim serving the SoftPro API on %s (%d tenants, %d records of each type, quota %d per %s)\n",
		base, len(ids), cfg.records, cfg.rateLimit, cfg.rateWindow)
	for _, id := range ids {
		t, _ := s.Tenant(id)
		fmt.Fprintf(out, "  %s  baseUrl=%s/t/%s  apiKey=%s  clientId=%s  clientSecret=%s\n", id, base, id, t.APIKey, t.ClientID, t.ClientSecret)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if cfg.changeRate > 0 {
		g.Go(func() error {
			if cfg.hook.Target == "" {
				return changeOnly(gctx, s, cfg.changeRate)
			}
			hook := cfg.hook
			hook.Rate = cfg.changeRate
			hook.Secrets, hook.Schemes = map[string]string{}, map[string]domain.SignatureScheme{}
			for _, id := range ids {
				hook.Secrets[id], hook.Schemes[id] = cfg.secret, domain.SignatureScheme(cfg.scheme)
			}
			st, err := s.RunWebhooks(gctx, hook)
			fmt.Fprintf(out, "webhooks: sent %d (duplicates %d, late %d, bad signatures %d, transport errors %d), answers %v\n",
				st.Sent, st.Duplicates, st.Late, st.BadSignatures, st.Errors, st.ByStatus)
			return err
		})
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func changeOnly(ctx context.Context, s *sim.Sim, rate float64) error {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.ModifyRandom()
		}
	}
}

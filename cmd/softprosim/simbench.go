package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/ingest"
)

type benchSyncConfig struct {
	databaseURL string
	redisURL    string
	small       int
	large       int
	reps        int
	limited     bool
}

func newBenchSyncCmd() *cobra.Command {
	cfg := benchSyncConfig{}
	cmd := &cobra.Command{
		Use:   "bench-sync",
		Short: "Benchmark scheduled sync against the simulated SoftPro API, with its rate limit off and on",
		Long: "Runs softprohub (API role, embedded broker) and the simulator in process, and times\n" +
			"POST …/sync?wait=true: every record of every type paged from the API and appended with\n" +
			"acks=all. Scenarios: --small and --large records of each type, with the quota off and\n" +
			"with 100 requests/min (RATE_LIMIT_DEFAULT) at both ends. Prints medians of --reps runs\n" +
			"(the large rate-limited case runs once).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchSync(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/softprohub_bench?sslmode=disable", "Postgres (created if missing; the run uses a fresh schema)")
	f.StringVar(&cfg.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	f.IntVar(&cfg.small, "small", 100, "records of each type, small case")
	f.IntVar(&cfg.large, "large", 10_000, "records of each type, large case")
	f.IntVar(&cfg.reps, "reps", 5, "repetitions per scenario (median reported)")
	f.BoolVar(&cfg.limited, "limited", true, "also run the scenarios with 100 requests/min")
	return cmd
}

type benchScenario struct {
	name    string
	records int
	quota   int // 0: off
	reps    int
}

func runBenchSync(ctx context.Context, cfg benchSyncConfig, out io.Writer) error {
	nonce := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	dataDir, err := os.MkdirTemp("", "softprohub-bench-sync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	broker, err := kafka.StartBroker(kafka.BrokerConfig{DataDir: dataDir + "/kafka", Partitions: 12})
	if err != nil {
		return err
	}
	defer broker.Close()
	schema := "bench_sync_" + nonce
	dbURL, err := benchSchemaURL(cfg.databaseURL, schema)
	if err != nil {
		return err
	}
	defer dropBenchSchema(cfg.databaseURL, schema)
	acfg := app.DefaultConfig()
	acfg.DatabaseURL, acfg.RedisURL, acfg.KafkaBrokers = dbURL, cfg.redisURL, broker.Addrs()
	acfg.HTTPAddr, acfg.DataDir, acfg.LogLevel = "127.0.0.1:0", dataDir, "error"
	acfg.JWTSecret, acfg.SecretsKey = "bench-"+nonce, "bench-key-"+nonce
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(ctx, acfg, app.Options{Dev: true, Logger: quiet, Roles: app.Roles{API: true}})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Listen(); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = a.Run(runCtx) }()
	token, err := httpapi.IssueToken([]byte(acfg.JWTSecret), "bench", httpapi.RoleAdmin, time.Hour, time.Now())
	if err != nil {
		return err
	}
	hub := benchClient{base: "http://" + a.Addr(), token: token, c: &http.Client{Timeout: 10 * time.Minute}}

	scenarios := []benchScenario{{"limit off", cfg.small, 0, cfg.reps}, {"limit off", cfg.large, 0, max(1, cfg.reps/2)}}
	if cfg.limited {
		scenarios = append(scenarios, benchScenario{"100 req/min", cfg.small, 100, cfg.reps}, benchScenario{"100 req/min", cfg.large, 100, 1})
	}
	logf("bench-sync: softprohub (API role, embedded broker, 12 partitions) and softprosim in process, GOMAXPROCS=%d, page size 500", runtime.GOMAXPROCS(0))
	logf("%-12s %8s %5s %10s %12s %9s %6s", "scenario", "records", "runs", "median", "records/s", "requests", "429s")
	for _, sc := range scenarios {
		var tenants []string
		for r := range sc.reps {
			tenants = append(tenants, fmt.Sprintf("bench-%s-%d-%d-%d", nonce, sc.records, sc.quota, r))
		}
		s := sim.New(sim.Config{Seed: 7, Tenants: tenants, Records: sc.records, RateLimit: sc.quota, RateWindow: time.Minute})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		simURL := "http://" + ln.Addr().String()
		var times []time.Duration
		var last ingest.SyncRun
		for _, id := range tenants {
			limit := 1_000_000
			if sc.quota > 0 {
				limit = sc.quota
			}
			if err := hub.setup(id, limit, s, simURL); err != nil {
				_ = srv.Close()
				return err
			}
			start := time.Now()
			run, err := hub.sync(id)
			d := time.Since(start)
			if err != nil {
				_ = srv.Close()
				return err
			}
			if run.Status != ingest.RunSucceeded || run.Total() != 4*sc.records {
				_ = srv.Close()
				return fmt.Errorf("%s: run %d %s with %d records: %s", id, run.ID, run.Status, run.Total(), run.Error)
			}
			times, last = append(times, d), run
		}
		_ = srv.Close()
		slices.Sort(times)
		med := times[len(times)/2]
		logf("%-12s %8d %5d %10s %12.0f %9d %6d", sc.name, 4*sc.records, len(times), med.Round(time.Millisecond),
			float64(4*sc.records)/med.Seconds(), last.Requests, last.RateLimited)
	}
	return nil
}

type benchClient struct {
	base, token string
	c           *http.Client
}

func (b benchClient) do(method, path string, body any) ([]byte, error) {
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return raw, nil
}

func (b benchClient) setup(id string, limit int, s *sim.Sim, simURL string) error {
	if _, err := b.do(http.MethodPost, "/api/v1/integrations/softpro", map[string]any{"id": id, "organizationId": "bench",
		"syncTypes": domain.SyncTypes, "syncEnabled": false, "rateLimit": limit}); err != nil {
		return err
	}
	t, ok := s.Tenant(id)
	if !ok {
		return errors.New("no tenant " + id)
	}
	_, err := b.do(http.MethodPut, "/api/v1/integrations/softpro/"+id+"/sync/connection",
		map[string]any{"baseUrl": simURL + "/t/" + id, "auth": "api_key", "apiKey": t.APIKey})
	return err
}

func (b benchClient) sync(id string) (ingest.SyncRun, error) {
	raw, err := b.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", nil)
	if err != nil {
		return ingest.SyncRun{}, err
	}
	var resp struct {
		Data struct {
			Run ingest.SyncRun `json:"run"`
		} `json:"data"`
	}
	return resp.Data.Run, json.Unmarshal(raw, &resp)
}

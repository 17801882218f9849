package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// ceilingMaxBody matches the service's default body limit.
const ceilingMaxBody = 1 << 20

// ceilingConfig is the ceiling command's configuration.
type ceilingConfig struct {
	Addr         string
	Integrations int
	IDPrefix     string
	SecretPrefix string
	Scheme       string
}

// Validate reports every problem with the configuration.
func (c ceilingConfig) Validate() error {
	var errs []error
	if c.Integrations < 1 {
		errs = append(errs, errors.New("--integrations must be at least 1"))
	}
	if !domain.SignatureScheme(c.Scheme).Valid() {
		errs = append(errs, fmt.Errorf("--scheme must be %q or %q", domain.SchemeSoftPro, domain.SchemeStandardWebhooks))
	}
	return errors.Join(errs...)
}

// listenAddr accepts host:port or a bare port, which binds the loopback.
func listenAddr(addr string) string {
	if _, err := strconv.Atoi(addr); err == nil {
		return net.JoinHostPort("127.0.0.1", addr)
	}
	return addr
}

func newCeilingCmd() *cobra.Command {
	var cfg ceilingConfig
	cmd := &cobra.Command{
		Use:   "ceiling",
		Short: "Serve the webhook endpoint with nothing but HMAC verification, as the benchmark ceiling",
		Long: `ceiling is a bare net/http server answering POST /api/webhooks/softpro/{id}:
it reads the body, looks the integration's secret up in memory, verifies the
signature with ingest.Verify and answers 200 with a small JSON body. No
rate limit, dedup, time window, payload parsing or broker: whatever the
service does beyond this is what its throughput is compared against.

The first line on stdout is "LISTEN host:port". It runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			return runCeiling(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address, host:port or a bare port on 127.0.0.1; port 0 picks a free one")
	f.IntVar(&cfg.Integrations, "integrations", 50, "number of integrations, <id-prefix>0 … <id-prefix>N-1")
	f.StringVar(&cfg.IDPrefix, "id-prefix", "bench-", "integration id prefix")
	f.StringVar(&cfg.SecretPrefix, "secret-prefix", "bench-secret-", "integration i's secret is <secret-prefix>i (standard-webhooks: whsec_ + base64 of it)")
	f.StringVar(&cfg.Scheme, "scheme", string(domain.SchemeSoftPro), "signature scheme: softpro or standard-webhooks")
	return cmd
}

// runCeiling serves until ctx is cancelled, then shuts down within 5 s.
func runCeiling(ctx context.Context, cfg ceilingConfig, out io.Writer) error {
	ln, err := net.Listen("tcp", listenAddr(cfg.Addr))
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	if _, err := fmt.Fprintf(out, "LISTEN %s\n", ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("print listen address: %w", err)
	}
	srv := &http.Server{
		Handler:           newCeilingHandler(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

// ceilingHandler verifies webhooks and nothing else. It is safe for
// concurrent use; its maps are read-only after construction.
type ceilingHandler struct {
	scheme  domain.SignatureScheme
	secrets map[string][]domain.Secret
	// accepted holds each integration's pre-rendered 200 body.
	accepted map[string][]byte
	bufs     sync.Pool
}

func newCeilingHandler(cfg ceilingConfig) http.Handler {
	h := &ceilingHandler{
		scheme:   domain.SignatureScheme(cfg.Scheme),
		secrets:  make(map[string][]domain.Secret, cfg.Integrations),
		accepted: make(map[string][]byte, cfg.Integrations),
		bufs:     sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	for i := range cfg.Integrations {
		id := cfg.IDPrefix + strconv.Itoa(i)
		h.secrets[id] = []domain.Secret{{KeyID: "k1", Value: secretFor(h.scheme, cfg.SecretPrefix, i)}}
		body, _ := json.Marshal(map[string]any{"success": true, "message": "Webhook received", "integrationId": id})
		h.accepted[id] = append(body, '\n')
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/webhooks/softpro/{id}", h)
	return mux
}

func (h *ceilingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	secrets, ok := h.secrets[id]
	if !ok {
		writeCeilingError(w, http.StatusNotFound, ingest.CodeIntegrationNotFound, "integration not found")
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	defer h.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, ceilingMaxBody)); err != nil {
		writeCeilingError(w, http.StatusRequestEntityTooLarge, ingest.CodePayloadTooLarge, "could not read body")
		return
	}
	if _, err := ingest.Verify(h.scheme, r.Header, buf.Bytes(), secrets); err != nil {
		if errors.Is(err, ingest.ErrSignatureMissing) {
			writeCeilingError(w, http.StatusUnauthorized, ingest.CodeSignatureMissing, "signature header missing")
			return
		}
		writeCeilingError(w, http.StatusUnauthorized, ingest.CodeSignatureInvalid, "signature does not match")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(h.accepted[id])
}

func writeCeilingError(w http.ResponseWriter, status int, code ingest.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": false,
		"error":   map[string]string{"code": string(code), "message": msg},
	})
}

package tests

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
)

// devStart does what `softprohub serve --dev` does with cfg: app.New in
// dev mode, Listen, BootstrapDev, Run. It returns the service's URL, what
// the bootstrap printed and a stop function, or the error that refused the
// start.
func devStart(t *testing.T, cfg app.Config) (url, printed string, stop func(), err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Dev: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		return "", "", nil, err
	}
	if err := a.Listen(); err != nil {
		cancel()
		a.Close()
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := a.BootstrapDev(ctx, &out); err != nil {
		cancel()
		a.Close()
		return "", out.String(), nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
		a.Close()
	}
	t.Cleanup(stop)
	return "http://" + a.Addr(), out.String(), stop, nil
}

// devGet sends GET path with token and returns the status.
func devGet(t *testing.T, url, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// devWebhook sends a webhook to the demo integration signed with secret
// and returns the status.
func devWebhook(t *testing.T, url, secret string) int {
	t.Helper()
	w := signedWebhook(app.DemoIntegrationID, secret, payload("evt_dev_"+randomID(4), domain.DocumentUploaded, `{"id":"d1"}`))
	req, _ := http.NewRequest(http.MethodPost, url+"/api/webhooks/softpro/"+w.integration, bytes.NewReader(w.body))
	req.Header = w.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Dev mode writes its generated secrets to DATA_DIR/dev-secrets.env with
// mode 0600 and reuses them on the next start, so the first start's token
// and demo secret still work; `softprohub token` falls back to the file;
// a fresh DATA_DIR against the same database is refused, naming DATA_DIR.
func TestDevModeSecretsSurviveRestartsAndAFreshDataDirIsRefused(t *testing.T) {
	t.Parallel()
	s := sharedServices(t)
	schema := "test_dev" + randomID(4)
	t.Cleanup(func() { dropSchema(s.databaseURL, schema) })
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = withSchema(t, s.databaseURL, schema)
	cfg.RedisURL = s.redisURL
	cfg.KafkaBrokers = nil // the embedded broker under DATA_DIR, as dev mode runs it
	cfg.KafkaEmbeddedPort = 0
	cfg.KafkaPartitions = 3
	cfg.KafkaAppendTimeout = 5 * time.Second
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.JWTSecret, cfg.SecretsKey = "", ""
	cfg.LogLevel = "warn"

	url, printed, stop, err := devStart(t, cfg)
	if err != nil {
		t.Fatalf("first dev start: %v", err)
	}
	token := regexp.MustCompile(`admin token \(24h\): (\S+)`).FindStringSubmatch(printed)
	secret := regexp.MustCompile(`demo secret:\s+(\S+)`).FindStringSubmatch(printed)
	if token == nil || secret == nil {
		t.Fatalf("first start printed no token or demo secret:\n%s", printed)
	}
	path := app.DevSecretsPath(cfg.DataDir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %o, want 600", path, mode)
	}
	first, err := app.ReadDevSecrets(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if status := devGet(t, url, "/api/v1/integrations/softpro", token[1]); status != 200 {
		t.Fatalf("first start's token on the first start: %d", status)
	}
	if status := devWebhook(t, url, secret[1]); status != 200 {
		t.Fatalf("demo secret on the first start: %d", status)
	}
	stop()

	// Second start on the same DATA_DIR: same keys, so the first start's
	// token is accepted and the demo secret (sealed with SECRETS_KEY) opens.
	url, printed, stop, err = devStart(t, cfg)
	if err != nil {
		t.Fatalf("second dev start: %v", err)
	}
	if strings.Contains(printed, "demo secret:") || !strings.Contains(printed, "integrations: 1") {
		t.Errorf("second start printed:\n%s", printed)
	}
	second, err := app.ReadDevSecrets(cfg.DataDir)
	if err != nil || second != first {
		t.Fatalf("dev secrets after a restart: %+v %v, want those of the first start", second, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s after a restart: %v %v", path, fi.Mode(), err)
	}
	if status := devGet(t, url, "/api/v1/integrations/softpro", token[1]); status != 200 {
		t.Errorf("first start's token after a restart: %d", status)
	}
	if status := devWebhook(t, url, secret[1]); status != 200 {
		t.Errorf("demo secret after a restart: %d", status)
	}

	// `softprohub token` without JWT_SECRET signs with the file's.
	bin := softprohubBinary(t)
	cmd := exec.Command(bin, "token", "--ttl", "5m")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JWT_SECRET=") && !strings.HasPrefix(kv, "DATA_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DATA_DIR="+cfg.DataDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("softprohub token: %v\n%s", err, stderr.String())
	}
	if status := devGet(t, url, "/api/v1/integrations/softpro", strings.TrimSpace(string(out))); status != 200 {
		t.Errorf("token minted from %s: %d", path, status)
	}
	stop()

	// A data folder made anew against the same database: refused, saying
	// what to do.
	fresh := cfg
	fresh.DataDir = t.TempDir()
	_, _, _, err = devStart(t, fresh)
	if err == nil || !strings.Contains(err.Error(), "DATA_DIR") || !strings.Contains(err.Error(), app.DevSecretsPath(fresh.DataDir)) {
		t.Fatalf("dev start with a fresh DATA_DIR on the same database: %v, want a refusal naming DATA_DIR", err)
	}
}

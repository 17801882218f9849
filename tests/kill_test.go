package tests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/secretbox"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// softprohubBinary builds the real binary once per run.
func softprohubBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "softprohub-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "softprohub")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/softprohub").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestKilledProcessResumesFromCheckpoints runs the real binary, kills it
// with SIGKILL while webhooks are being ingested and projected, starts it
// again, and checks that every accepted webhook is projected exactly once.
func TestKilledProcessResumesFromCheckpoints(t *testing.T) {
	t.Parallel()
	s := sharedServices(t)
	ns := "k" + randomID(4)
	dataDir := t.TempDir()
	broker := startBroker(t, dataDir, 0)
	t.Cleanup(broker.Close)
	schema := "test_" + ns
	dbURL := withSchema(t, s.databaseURL, schema)
	t.Cleanup(func() { dropSchema(s.databaseURL, schema) })
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"DATABASE_URL="+dbURL, "REDIS_URL="+s.redisURL, "KAFKA_BROKERS="+broker.Addrs()[0],
		"KAFKA_PARTITIONS=3", "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "DATA_DIR="+dataDir,
		"JWT_SECRET=kill-test", "SECRETS_KEY=kill-test-key", "LOG_LEVEL=error", "QUEUE_RETRY_DELAY=50")
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(softprohubBinary(t), "serve")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd
				}
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("softprohub serve not ready: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	proc := start()
	t.Cleanup(func() { _ = proc.Process.Kill(); _, _ = proc.Process.Wait() })

	// The integration goes straight into the store, as `integrations create` does.
	pool, err := postgres.Open(context.Background(), dbURL, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	box, _ := secretbox.NewFromString("kill-test-key")
	id, secret := ns+"-a", "secret-"+ns
	cfg := app.DefaultConfig()
	if _, err := postgres.NewIntegrationStore(pool, box).Create(context.Background(), domain.Integration{
		ID: id, OrganizationID: "o", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeSoftPro,
		SyncFrequency: cfg.SyncDefaultInterval, RateLimit: 100, IngestRateLimit: 1_000_000,
	}, secret); err != nil {
		t.Fatal(err)
	}

	e := &Env{t: t, URL: base, client: &http.Client{Timeout: 5 * time.Second}}
	var accepted atomic.Int64
	sendRange := func(from, to int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += 8 {
					typ := domain.WebhookTypes[i%len(domain.WebhookTypes)]
					body := event(fmt.Sprintf("evt_%d", i), typ, time.Now(), fmt.Sprintf(`{"id":"x%d","transaction_id":"x%d","status":"s%d"}`, i%40, i%40, i))
					req, _ := http.NewRequest(http.MethodPost, base+"/api/webhooks/softpro/"+id, bytesReader(body))
					req.Header = signedWebhook(id, secret, body).header
					resp, err := e.client.Do(req)
					if err != nil {
						continue // the process was killed under this request
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						accepted.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}

	db := e.dbAt(dbURL)
	sendRange(0, 600)
	// Kill while the projectors are still working through the backlog.
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %s of %d accepted webhooks projected", queryString(t, db, `SELECT count(*) FROM webhook_events`), accepted.Load())
	_, _ = proc.Process.Wait()
	proc = start()
	sendRange(600, 900)

	want := accepted.Load()
	if want < 850 {
		t.Fatalf("only %d of 900 webhooks accepted", want)
	}
	eventually(t, 90*time.Second, func() string {
		got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE status = 'COMPLETED'`)
		if got != fmt.Sprint(want) {
			return fmt.Sprintf("%s of %d accepted webhooks projected", got, want)
		}
		return ""
	})
	if got := queryString(t, db, `SELECT sum(received)::bigint, sum(completed)::bigint FROM integration_metrics_hourly`); got != fmt.Sprintf("%d %d", want, want) {
		t.Fatalf("hourly metrics %q, want %d received and completed: an event was counted twice or lost", got, want)
	}
	assertTotalsMatch(t, db)
	if got := queryString(t, db, `SELECT count(*) FROM transaction_status_changes GROUP BY event_id HAVING count(*) > 1`); got != "" {
		t.Fatalf("status changes recorded twice: %s", got)
	}
}

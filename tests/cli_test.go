package tests

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roisystems/softprohub/domain"
)

// cliEnv is the environment that points the binary's commands at e's
// database and broker.
func cliEnv(e *Env) []string {
	return append(os.Environ(), "DATABASE_URL="+e.Cfg.DatabaseURL, "SECRETS_KEY="+e.Cfg.SecretsKey,
		"JWT_SECRET="+e.Cfg.JWTSecret, "KAFKA_BROKERS="+strings.Join(e.Brokers, ","), "DATA_DIR="+e.Cfg.DataDir)
}

// TestCLI drives the operator commands of the real binary against an
// env's database and broker.
func TestCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := softprohubBinary(t)
	env := cliEnv(e)
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("softprohub %v: %v\n%s", args, err, stderr.String())
		}
		return string(out), stderr.String()
	}

	id := e.id("cli")
	out, stderr := run("integrations", "create", "--id", id, "--org", "org_cli")
	secret := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "webhook secret (shown once):"))
	if !strings.Contains(out, `"id": "`+id+`"`) || !strings.Contains(out, `"webhookSecret": "***"`) || strings.Contains(out, secret) || len(secret) < 16 {
		t.Fatalf("create printed:\n%s\nstderr: %s", out, stderr)
	}
	if out, _ := run("integrations", "list"); !strings.Contains(out, id+"\torg=org_cli") {
		t.Fatalf("list: %s", out)
	}
	if out, _ := run("integrations", "show", id); !strings.Contains(out, `"organizationId": "org_cli"`) || strings.Contains(out, secret) {
		t.Fatalf("show: %s", out)
	}

	// The generated secret signs webhooks; after rotation both verify (grace).
	body := payload("evt_cli_1", domain.TaskCreated, `{"id":"tsk_1"}`)
	if r := e.send(signedWebhook(id, secret, body)); r.Status != http.StatusOK {
		t.Fatalf("webhook with the created secret: %d %s", r.Status, r.Raw)
	}
	_, stderr = run("integrations", "rotate-secret", id)
	rotated := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "new webhook secret (shown once):"))
	if rotated == secret || len(rotated) < 16 {
		t.Fatalf("rotate-secret printed %q", stderr)
	}
	// The change notification reaches the running service's cache.
	eventually(t, 10*time.Second, func() string {
		b := payload("evt_cli_"+randomID(3), domain.TaskCreated, `{"id":"tsk_1"}`)
		if r := e.send(signedWebhook(id, rotated, b)); r.Status != http.StatusOK {
			return "rotated secret not accepted yet"
		}
		return ""
	})

	// token mints a JWT the service accepts, with the asked role.
	tok, _ := run("token", "--role", "analyst", "--ttl", "5m")
	tok = strings.TrimSpace(tok)
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(e.Cfg.JWTSecret), nil }); err != nil || claims["role"] != "analyst" {
		t.Fatalf("token %q: %v %v", tok, err, claims)
	}
	if status, _ := e.do(http.MethodGet, "/api/v1/integrations/softpro", tok, nil); status != http.StatusOK {
		t.Fatalf("analyst token rejected: %d", status)
	}

	// log tail prints the envelopes of the log, filtered by integration.
	out, _ = run("log", "tail", "--integration", id)
	if !strings.Contains(out, `"eventId":"evt_cli_1"`) || !strings.Contains(out, `"topic":"softpro.tasks.v1"`) || strings.Count(out, "\n") < 2 {
		t.Fatalf("log tail:\n%s", out)
	}
	if out, _ := run("log", "tail", "--integration", e.id("nobody")); out != "" {
		t.Fatalf("log tail of an unknown integration printed:\n%s", out)
	}
}

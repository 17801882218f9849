package tests

import (
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// TestCLIStandardWebhooksSecret: a secret the CLI generates for a
// standard-webhooks integration is one that scheme can verify with, at
// creation and at rotation, and a secret the API would refuse is refused.
func TestCLIStandardWebhooksSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := softprohubBinary(t)
	env := cliEnv(e)
	run := func(args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		return string(out), stderr.String(), err
	}
	send := func(id, secret, msgID string) response {
		t.Helper()
		body := payload(msgID, domain.TaskCreated, `{"id":"tsk_1"}`)
		now := time.Now()
		sig, err := ingest.SignStandard([]byte(secret), msgID, now, body)
		if err != nil {
			t.Fatalf("secret %q cannot sign standard webhooks: %v", secret, err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Webhook-Id", msgID)
		h.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("Webhook-Signature", sig)
		return e.send(webhook{integration: id, body: body, header: h})
	}

	id := e.id("clistd")
	_, stderr, err := run("integrations", "create", "--id", id, "--org", "org_cli", "--scheme", "standard-webhooks")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	secret := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "webhook secret (shown once):"))
	if r := send(id, secret, "msg_cli_1"); r.Status != http.StatusOK {
		t.Fatalf("webhook with the generated secret: %d %s", r.Status, r.Raw)
	}
	_, stderr, err = run("integrations", "rotate-secret", id)
	if err != nil {
		t.Fatalf("rotate-secret: %v\n%s", err, stderr)
	}
	rotated := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "new webhook secret (shown once):"))
	eventually(t, 10*time.Second, func() string {
		if r := send(id, rotated, "msg_cli_"+randomID(3)); r.Status != http.StatusOK {
			return "rotated secret: " + strconv.Itoa(r.Status) + " " + string(r.Raw)
		}
		return ""
	})

	// Secrets the API refuses are refused here too, and nothing is created.
	bad := e.id("clibad")
	for _, args := range [][]string{
		{"integrations", "create", "--id", bad, "--org", "o", "--secret", "short"},
		{"integrations", "create", "--id", bad, "--org", "o", "--scheme", "standard-webhooks", "--secret", "not-base64-secret!"},
	} {
		if _, _, err := run(args...); err == nil {
			t.Fatalf("%v succeeded", args)
		}
	}
	if _, _, err := run("integrations", "rotate-secret", id, "--secret", "not-base64-secret!"); err == nil {
		t.Fatal("rotate-secret with a secret the scheme cannot use succeeded")
	}
	if status, _ := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+bad, e.Token, nil); status != http.StatusNotFound {
		t.Fatalf("refused create left integration %s: %d", bad, status)
	}
}

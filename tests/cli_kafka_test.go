package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

// kafka runs the embedded broker alone: it creates every topic with
// KAFKA_PARTITIONS partitions and prints the KAFKA_BROKERS a serve
// process then shares it through; what it was given survives a restart
// on the same DATA_DIR, and SIGTERM stops it cleanly.
func TestCLIKafkaServesABrokerOthersShare(t *testing.T) {
	t.Parallel()
	bin := softprohubBinary(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	env := append(os.Environ(), "DATA_DIR="+dataDir, "KAFKA_EMBEDDED_PORT="+strconv.Itoa(port), "KAFKA_PARTITIONS=2", "LOG_LEVEL=warn")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// start runs the command and waits for its first line.
	start := func() (*exec.Cmd, *strings.Builder) {
		t.Helper()
		cmd := exec.Command(bin, "kafka")
		cmd.Env = env
		stderr := &strings.Builder{}
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if want := "KAFKA_BROKERS=" + addr + "\n"; line != want {
			t.Fatalf("kafka printed %q (%v), want %q; stderr: %s", line, err, want, stderr)
		}
		return cmd, stderr
	}
	stop := func(cmd *exec.Cmd, stderr *strings.Builder) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("kafka after SIGTERM: %v\n%s", err, stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("kafka did not stop within 10s of SIGTERM")
		}
	}

	broker, stderr := start()
	ctx := ctxT(t, 30*time.Second)
	offsets, err := kafka.EndOffsets(ctx, []string{addr}, domain.AllTopics...)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	for _, topic := range domain.AllTopics {
		if len(offsets[topic]) != 2 {
			t.Errorf("topic %s has %d partitions, want KAFKA_PARTITIONS=2", topic, len(offsets[topic]))
		}
	}

	// serve shares the broker: a webhook is appended to it and projected.
	e := newEnv(t, func(c *app.Config) { c.KafkaBrokers = []string{addr} })
	db := e.db()
	id, secret := e.integration("shared", nil)
	if r := e.send(signedWebhook(id, secret, payload("evt_shared", domain.TaskCreated, `{"id":"tsk_1"}`))); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Raw)
	}
	waitAudit(t, db, id, 1)
	e.shutdown()
	stop(broker, stderr)

	broker, stderr = start()
	var found []string
	err = kafka.Tail(ctx, kafka.TailConfig{Brokers: []string{addr}, IntegrationID: id}, func(r kafka.Record) error {
		found = append(found, r.Envelope.EventID)
		return nil
	})
	if err != nil || len(found) != 1 || found[0] != "evt_shared" {
		t.Fatalf("the log after a restart on the same DATA_DIR: %v %v, want evt_shared", found, err)
	}

	// A second broker cannot share the data or the port, and says so.
	for _, c := range []struct{ dataDir, want string }{
		{dataDir, "data dir in use by another broker"},
		{t.TempDir(), "address already in use"},
	} {
		second := exec.CommandContext(ctx, bin, "kafka")
		second.Env = append(env, "DATA_DIR="+c.dataDir)
		out, err := second.CombinedOutput()
		if err == nil || !strings.HasPrefix(string(out), "softprohub: ") || !strings.Contains(string(out), c.want) {
			t.Errorf("a second kafka (%s): %v\n%s\nwant it refused saying %q", c.dataDir, err, out, c.want)
		}
	}
	stop(broker, stderr)
}

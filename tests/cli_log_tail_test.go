package tests

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

// tailBroker starts a broker with every topic of the service and one
// record on softpro.other.v1 (evt_tail_1), and returns a function making
// commands of the binary pointed at it.
func tailBroker(t *testing.T) func(args ...string) *exec.Cmd {
	t.Helper()
	bin := softprohubBinary(t)
	dir := t.TempDir()
	broker := startBroker(t, dir, 0)
	t.Cleanup(broker.Close)
	ctx := ctxT(t, 60*time.Second)
	if _, err := kafka.EnsureTopics(ctx, broker.Addrs(), domain.AllTopics, kafka.TopicSpec{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: broker.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	now := time.Now().UTC()
	env := domain.Envelope{Schema: domain.SchemaV1, EventID: "evt_tail_1", IntegrationID: "tail-int", Type: "custom.thing",
		OccurredAt: now, ReceivedAt: now, Source: domain.SourceWebhook, Payload: json.RawMessage(`{"id":"x1"}`)}
	env.Priority = env.Type.Priority()
	if _, err := p.AppendTo(ctx, domain.TopicOther, env); err != nil {
		t.Fatal(err)
	}
	cliEnv := append(os.Environ(), "KAFKA_BROKERS="+strings.Join(broker.Addrs(), ","), "DATA_DIR="+dir, "LOG_LEVEL=warn")
	return func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = cliEnv
		return cmd
	}
}

// log tail refuses a topic name the broker does not have, that is not
// one of the service's, in both modes, with exit 1, naming it and
// printing no record.
func TestCLILogTailUnknownTopic(t *testing.T) {
	t.Parallel()
	command := tailBroker(t)
	for _, args := range [][]string{
		{"--topic", "bogus.topic"},
		{"--topic", "bogus.topic," + domain.TopicOther},
		{"--topic", domain.TopicOther, "--topic", "bogus.topic"},
		{"-f", "--topic", "bogus.topic"},
		{"-f", "--topic", "bogus.topic," + domain.TopicOther},
	} {
		cmd := command(append([]string{"log", "tail"}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || stdout.String() != "" ||
			!strings.HasPrefix(stderr.String(), `softprohub: tail: unknown topic "bogus.topic"`) {
			t.Errorf("log tail %q: %v\nstdout: %s\nstderr: %s\nwant exit 1 naming bogus.topic, and no record", args, err, stdout.String(), stderr.String())
		}
	}
	// A known topic still reads.
	if out, err := command("log", "tail", "--topic", domain.TopicOther).Output(); err != nil || !strings.Contains(string(out), `"eventId":"evt_tail_1"`) {
		t.Fatalf("log tail --topic %s: %v\n%s", domain.TopicOther, err, out)
	}

}

// Ctrl-C (SIGINT), the way to end log tail -f, ends it with exit 0 and
// nothing on stderr.
func TestCLILogTailFollowEndsOnInterrupt(t *testing.T) {
	t.Parallel()
	command := tailBroker(t)
	cmd := command("log", "tail", "-f")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, `"eventId":"evt_tail_1"`) {
		t.Fatalf("log tail -f printed %q (%v); stderr: %s", line, err, stderr.String())
	}
	time.Sleep(200 * time.Millisecond) // following
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || stderr.String() != "" {
			t.Errorf("log tail -f after SIGINT: %v, stderr %q; want exit 0 and nothing on stderr", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("log tail -f did not end within 15s of SIGINT")
	}
}

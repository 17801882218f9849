package tests

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
)

// logCapture keeps what a logger wrote, for a test to wait on.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// launchWithoutBroker restarts e's app with roles, pointed at an address
// where no broker answers yet, and waits until it has logged warning at
// least twice; it fails the test if the app stops meanwhile. It returns the
// broker port and the app's logs.
func launchWithoutBroker(t *testing.T, e *Env, roles app.Roles, warning string) (port int, logs *logCapture) {
	t.Helper()
	e.shutdown()
	e.Broker.Close()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	e.Cfg.KafkaBrokers = []string{fmt.Sprintf("127.0.0.1:%d", port)}
	e.Brokers = e.Cfg.KafkaBrokers
	logs = &logCapture{}
	e.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.roles = roles
	e.launch()
	eventually(t, 20*time.Second, func() string {
		select {
		case <-e.exited:
			t.Fatalf("the app stopped while the broker was down:\n%s", logs)
		default:
		}
		if n := strings.Count(logs.String(), warning); n < 2 {
			return fmt.Sprintf("%q logged %d times, want 2", warning, n)
		}
		return ""
	})
	return port, logs
}

// The process starts while its broker does not answer yet: it keeps
// serving (ingest answers 503), the projectors wait, and once a broker
// answers on that address the topics are created and events projected,
// without a restart.
func TestProjectorsStartWhenTheBrokerAnswersLate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	port, logs := launchWithoutBroker(t, e, app.AllRoles, "live projections cannot subscribe")
	if status, body := e.do(http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
		t.Fatalf("healthz without a broker: %d %s", status, body)
	}
	if status, body := e.do(http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a broker: %d %s", status, body)
	}
	w := signedWebhook(id, secret, event("evt_late", domain.TaskCreated, time.Now(), `{"id":"tsk_late","title":"late"}`))
	if r := e.send(w); r.Status != http.StatusServiceUnavailable || r.code() != "APPEND_FAILED" {
		t.Fatalf("webhook without a broker: %d %s", r.Status, r.Raw)
	}

	e.Broker = startBroker(t, t.TempDir(), port)
	select {
	case <-e.App.ProjectionsRunning():
	case <-time.After(60 * time.Second):
		t.Fatalf("the projectors did not subscribe within 60s of the broker's start:\n%s", logs)
	}
	eventually(t, 30*time.Second, func() string {
		if r := e.send(w); r.Status != http.StatusOK {
			return fmt.Sprintf("webhook once the broker answers: %d %s", r.Status, r.Raw)
		}
		return ""
	})
	db := e.db()
	waitAudit(t, db, id, 1)
	if got := queryString(t, db, `SELECT title FROM tasks WHERE integration_id = $1 AND id = 'tsk_late'`, id); got != "late" {
		t.Fatalf("task read model: %q", got)
	}
}

// A process without role project creates the topics itself once the
// broker answers, so its webhooks are appended again.
func TestIngestOnlyProcessCreatesTheTopicsWhenTheBrokerAnswersLate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	port, _ := launchWithoutBroker(t, e, app.Roles{Ingest: true, API: true}, "kafka topics not ensured")
	e.Broker = startBroker(t, t.TempDir(), port)
	w := signedWebhook(id, secret, event("evt_late", domain.ContactCreated, time.Now(), `{"id":"con_late"}`))
	eventually(t, 30*time.Second, func() string {
		if r := e.send(w); r.Status != http.StatusOK {
			return fmt.Sprintf("webhook once the broker answers: %d %s", r.Status, r.Raw)
		}
		return ""
	})
	offs := e.endOffsets()
	for _, topic := range domain.AllTopics {
		if n := len(offs[topic]); n != e.Cfg.KafkaPartitions {
			t.Errorf("%s has %d partitions, want %d", topic, n, e.Cfg.KafkaPartitions)
		}
	}
}

package tests

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/domain"
)

// durableRedis is a private redis-server that writes every command to its
// append-only file, so a killed one restarts with its keys.
type durableRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	url  string
}

func startDurableRedis(t *testing.T) *durableRedis {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	r := &durableRedis{t: t, port: port, dir: t.TempDir(), url: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *durableRedis) start() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		r.t.Fatalf("redis-server not on PATH (install the redis-server package): %v", err)
	}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.kill()
			r.t.Fatalf("private redis-server on %d did not answer", r.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *durableRedis) kill() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// When the append fails and the fingerprint cannot be released (Redis is
// down at that moment, or the process dies mid-append), the fingerprint must
// not keep answering the sender's retries as duplicates of an event that is
// not on the log.
func TestUnreleasedFingerprintDoesNotHideTheEvent(t *testing.T) {
	t.Parallel()
	rs := startDurableRedis(t)
	e := newEnv(t, ownBroker, func(c *appConfig) { c.RedisURL = rs.url })
	id, secret := e.integration("a", nil)
	rdb := redisOf(t, e)
	port := brokerPort(t, e)
	e.Broker.Close()

	w := signedWebhook(id, secret, payload("evt_unreleased", domain.TaskCreated, `{"id":"k1"}`))
	first := make(chan response, 1)
	go func() { first <- e.send(w) }()
	key := "dedup:" + id + ":evt_unreleased"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, _ := rdb.Exists(context.Background(), key).Result(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first delivery never set its fingerprint")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Redis goes away while the append is under way: the release fails.
	rs.kill()
	if r := <-first; r.Status != http.StatusServiceUnavailable || r.code() != "APPEND_FAILED" {
		t.Fatalf("first delivery with the broker down: %d %s", r.Status, r.Raw)
	}
	rs.start()
	if n, err := rdb.Exists(context.Background(), key).Result(); err != nil || n != 1 {
		t.Fatalf("the restarted redis lost the fingerprint (%d, %v): the test proves nothing", n, err)
	}
	e.Broker = startBroker(t, e.Cfg.DataDir, port)

	var r response
	deadline = time.Now().Add(40 * time.Second)
	for {
		r = e.send(w)
		if (r.Status == 200 && r.Body["duplicate"] == nil) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := countEvent(e, domain.TopicTasks, "evt_unreleased"); n != 1 {
		t.Fatalf("evt_unreleased on the log %d times after retries (last answer %d %s), want 1", n, r.Status, r.Raw)
	}
	if r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("retry after recovery: %d %s", r.Status, r.Raw)
	}
}

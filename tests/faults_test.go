package tests

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
)

type appConfig = app.Config

// ownBroker gives the env an embedded broker of its own even when
// TEST_KAFKA_BROKERS is set: fault tests stop and restart it.
func ownBroker(c *appConfig) { c.KafkaBrokers = nil }

func brokerPort(t *testing.T, e *Env) int {
	t.Helper()
	_, p, err := net.SplitHostPort(e.Broker.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return port
}

type redisServer struct {
	url  string
	stop func()
}

// startRedis runs a private redis-server the test may kill.
func startRedis(t *testing.T) redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not on PATH (install the redis-server package): %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("private redis-server on %d did not answer", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	return redisServer{url: url, stop: stop}
}

package tests

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Broker gone: /api/webhooks/health says unhealthy, not merely degraded.
func TestHealthUnhealthyWithoutBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	if status, body := e.call(http.MethodGet, "/api/webhooks/health", "", nil); status != 200 || !strings.Contains(string(body), `"status":"healthy"`) {
		t.Fatalf("health with broker: %d %s", status, body)
	}
	e.Broker.Close()
	status, body := e.call(http.MethodGet, "/api/webhooks/health", "", nil)
	if status != 503 || !strings.Contains(string(body), `"status":"unhealthy"`) || !strings.Contains(string(body), `"name":"kafka","ok":false`) {
		t.Fatalf("health without broker: %d %s", status, body)
	}
}

// Redis down only degrades: /readyz stays 200 and names redis as failing,
// not critical.
func TestReadyWithRedisDown(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	e := newEnv(t, func(c *appConfig) { c.RedisURL = rs.url })
	if status, body := e.call(http.MethodGet, "/readyz", "", nil); status != 200 || !strings.Contains(string(body), `"ready":true`) {
		t.Fatalf("readyz with redis: %d %s", status, body)
	}
	rs.stop()
	status, body := e.call(http.MethodGet, "/readyz", "", nil)
	if status != 200 || !strings.Contains(string(body), `"ready":true`) || !strings.Contains(string(body), `"name":"redis","ok":false,"critical":false`) {
		t.Fatalf("readyz with redis down: %d %s", status, body)
	}
	status, body = e.call(http.MethodGet, "/api/webhooks/health", "", nil)
	if status != 200 || !strings.Contains(string(body), `"status":"degraded"`) {
		t.Fatalf("health with redis down: %d %s", status, body)
	}
}

// Postgres unreachable: /readyz answers 503 naming postgres, and 200 again
// once it answers.
func TestReadyzNamesPostgresWhenUnreachable(t *testing.T) {
	t.Parallel()
	e, p := newEnvBehindDBProxy(t)
	if status, body := e.call(http.MethodGet, "/readyz", "", nil); status != 200 {
		t.Fatalf("readyz with postgres: %d %s", status, body)
	}
	p.down()
	status, body := e.call(http.MethodGet, "/readyz", "", nil)
	if status != 503 || !strings.Contains(string(body), `"ready":false`) || !strings.Contains(string(body), `"name":"postgres","ok":false,"critical":true`) {
		t.Fatalf("readyz without postgres: %d %s", status, body)
	}
	if strings.Contains(string(body), `"name":"kafka","ok":false`) {
		t.Fatalf("readyz without postgres blames the broker: %s", body)
	}
	status, body = e.call(http.MethodGet, "/api/webhooks/health", "", nil)
	if status != 503 || !strings.Contains(string(body), `"status":"unhealthy"`) {
		t.Fatalf("health without postgres: %d %s", status, body)
	}
	p.up()
	eventually(t, 30*time.Second, func() string {
		if status, body := e.do(http.MethodGet, "/readyz", "", nil); status != 200 {
			return "readyz after postgres is back: " + string(body)
		}
		return ""
	})
}

// newEnvBehindDBProxy starts an env whose database connections go through
// a proxy the test can cut, and returns once the service listens for
// integration changes through it: a first LISTEN that fails ends the
// process, as a start without Postgres does.
func newEnvBehindDBProxy(t *testing.T) (*Env, *tcpProxy) {
	t.Helper()
	s := sharedServices(t)
	u, err := url.Parse(s.databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startTCPProxy(t, u.Host)
	e := newEnv(t, ownBroker, func(c *appConfig) {
		pu, _ := url.Parse(c.DatabaseURL)
		pu.Host = p.addr
		c.DatabaseURL = pu.String()
	})
	direct, err := pgx.Connect(t.Context(), s.databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	eventually(t, 30*time.Second, func() string {
		var n int
		if err := direct.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND client_port = ANY($1)`,
			p.upstreamPorts()).Scan(&n); err != nil {
			return err.Error()
		}
		if n == 0 {
			return "the service does not LISTEN through the proxy yet"
		}
		return ""
	})
	return e, p
}

// tcpProxy forwards a local port to target; down closes the listener and
// every connection, up listens on the same port again.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close(); _ = c.Close() }()
	_, _ = io.Copy(c, up)
	_ = up.Close()
	_ = c.Close()
}

// upstreamPorts are the local ports of the proxy's open connections to
// its target.
func (p *tcpProxy) upstreamPorts() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int32
	for c := range p.conns {
		if c.RemoteAddr().String() == p.targetAddr() {
			out = append(out, int32(c.LocalAddr().(*net.TCPAddr).Port))
		}
	}
	return out
}

func (p *tcpProxy) targetAddr() string {
	a, err := net.ResolveTCPAddr("tcp", p.target)
	if err != nil {
		return p.target
	}
	return a.String()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

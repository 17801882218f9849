// Package tests holds black-box tests of softprohub across real components:
// Postgres, Redis, a Kafka-protocol broker and HTTP.
//
// Services come from TEST_DATABASE_URL, TEST_REDIS_URL and
// TEST_KAFKA_BROKERS when set; else from testcontainers when a Docker engine
// answers; else from the local servers (127.0.0.1:5432, 127.0.0.1:6379) and
// an in-process embedded broker per test. A service that cannot be reached
// fails the test with the variable to set; nothing skips.
package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/ingest"
)

// services are the shared endpoints of a test run.
type services struct {
	databaseURL string
	redisURL    string
	brokers     []string // empty: each test starts an embedded broker
	source      string
}

var (
	svcOnce sync.Once
	svc     services
	svcErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range containers {
		_ = testcontainers.TerminateContainer(c)
	}
	os.Exit(code)
}

var containers []testcontainers.Container

// sharedServices resolves where Postgres, Redis and Kafka come from, once.
func sharedServices(t *testing.T) services {
	t.Helper()
	svcOnce.Do(func() { svc, svcErr = resolveServices() })
	if svcErr != nil {
		t.Fatalf("test services: %v", svcErr)
	}
	return svc
}

func resolveServices() (services, error) {
	s := services{
		databaseURL: os.Getenv("TEST_DATABASE_URL"),
		redisURL:    os.Getenv("TEST_REDIS_URL"),
		source:      "environment",
	}
	if b := os.Getenv("TEST_KAFKA_BROKERS"); b != "" {
		s.brokers = strings.Split(b, ",")
	}
	if s.databaseURL == "" || s.redisURL == "" {
		if dockerAnswers() {
			if err := startContainers(&s); err != nil {
				return s, err
			}
			s.source = "testcontainers"
		}
	}
	if s.databaseURL == "" {
		s.databaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		s.source = "local servers"
	}
	if s.redisURL == "" {
		s.redisURL = "redis://127.0.0.1:6379/0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.databaseURL)
	if err != nil {
		return s, fmt.Errorf("postgres at %s unreachable (set TEST_DATABASE_URL): %w", s.databaseURL, err)
	}
	_ = conn.Close(ctx)
	opt, err := goredis.ParseURL(s.redisURL)
	if err != nil {
		return s, fmt.Errorf("TEST_REDIS_URL: %w", err)
	}
	rc := goredis.NewClient(opt)
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		return s, fmt.Errorf("redis at %s unreachable (set TEST_REDIS_URL): %w", s.redisURL, err)
	}
	return s, nil
}

// dockerAnswers reports whether a Docker engine is usable by testcontainers.
func dockerAnswers() bool {
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return false
	}
	defer p.Close()
	return p.Health(ctx) == nil
}

func startContainers(s *services) error {
	ctx := context.Background()
	if s.databaseURL == "" {
		pg, err := tcpostgres.Run(ctx, "postgres:15", tcpostgres.WithDatabase("test"), tcpostgres.WithUsername("postgres"),
			tcpostgres.WithPassword("postgres"), tcpostgres.BasicWaitStrategies())
		if err != nil {
			return fmt.Errorf("postgres container: %w", err)
		}
		containers = append(containers, pg)
		if s.databaseURL, err = pg.ConnectionString(ctx, "sslmode=disable"); err != nil {
			return err
		}
	}
	if s.redisURL == "" {
		rc, err := tcredis.Run(ctx, "redis:7")
		if err != nil {
			return fmt.Errorf("redis container: %w", err)
		}
		containers = append(containers, rc)
		if s.redisURL, err = rc.ConnectionString(ctx); err != nil {
			return err
		}
	}
	if len(s.brokers) == 0 {
		// A single KRaft Kafka node. Its advertised address must be known
		// before it starts, so it binds a host port picked here.
		port, err := freePort()
		if err != nil {
			return err
		}
		kc, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image:        "apache/kafka:3.9.0",
				ExposedPorts: []string{fmt.Sprintf("%d:%d/tcp", port, port)},
				Env: map[string]string{
					"KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller",
					"KAFKA_LISTENERS":                        fmt.Sprintf("PLAINTEXT://:%d,CONTROLLER://:9093", port),
					"KAFKA_ADVERTISED_LISTENERS":             fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port),
					"KAFKA_CONTROLLER_LISTENER_NAMES":        "CONTROLLER",
					"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":   "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
					"KAFKA_CONTROLLER_QUORUM_VOTERS":         "1@localhost:9093",
					"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
					"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
				},
				WaitingFor: wait.ForListeningPort(nat(port)).WithStartupTimeout(2 * time.Minute),
			},
			Started: true,
		})
		if err != nil {
			return fmt.Errorf("kafka container: %w", err)
		}
		containers = append(containers, kc)
		s.brokers = []string{fmt.Sprintf("127.0.0.1:%d", port)}
	}
	return nil
}

func nat(port int) string { return fmt.Sprintf("%d/tcp", port) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Env is one isolated softprohub instance: its own database schema, its own
// integrations and, unless TEST_KAFKA_BROKERS is set, its own broker.
type Env struct {
	t       *testing.T
	App     *app.App
	URL     string
	Cfg     app.Config
	Broker  *kafka.Broker // nil when the broker is shared
	Brokers []string
	Token   string
	// ns prefixes every integration id this env creates.
	ns     string
	start  kafka.Offsets
	stop   func()
	client *http.Client
	// log receives the app's logs from the next launch on; nil discards
	// them.
	log *slog.Logger
	// roles are the roles of the next launch; zero runs them all.
	roles app.Roles
	// exited is closed when the app launched last returns from Run.
	exited chan struct{}
}

// envOption adjusts an Env's configuration before it starts.
type envOption func(*app.Config)

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withSchema returns url with its search_path set to schema.
func withSchema(t *testing.T, raw, schema string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("database url: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// newEnv starts softprohub against the shared services.
func newEnv(t *testing.T, opts ...envOption) *Env {
	t.Helper()
	s := sharedServices(t)
	ns := "t" + randomID(4)
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = withSchema(t, s.databaseURL, "test_"+ns)
	cfg.RedisURL = s.redisURL
	cfg.KafkaBrokers = s.brokers
	cfg.KafkaPartitions = 3
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.JWTSecret = "test-jwt-" + ns
	cfg.SecretsKey = "test-key-" + ns
	cfg.LogLevel = "warn"
	cfg.KafkaAppendTimeout = 3 * time.Second
	cfg.KafkaEmbeddedPort = 0
	for _, o := range opts {
		o(&cfg)
	}
	e := &Env{t: t, Cfg: cfg, ns: ns, client: &http.Client{Timeout: 30 * time.Second}}
	if len(cfg.KafkaBrokers) == 0 {
		// The test owns its broker, so it can stop and restart it.
		e.Broker = startBroker(t, cfg.DataDir, 0)
		cfg.KafkaBrokers = e.Broker.Addrs()
		e.Cfg = cfg
	}
	e.Brokers = cfg.KafkaBrokers
	e.boot()
	t.Cleanup(func() {
		e.shutdown()
		if e.Broker != nil {
			e.Broker.Close()
		}
		dropSchema(s.databaseURL, "test_"+ns)
	})
	tok, err := httpapi.IssueToken([]byte(cfg.JWTSecret), "tester", httpapi.RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.Token = tok
	e.start = e.endOffsets()
	return e
}

func startBroker(t *testing.T, dataDir string, port int) *kafka.Broker {
	t.Helper()
	b, err := kafka.StartBroker(kafka.BrokerConfig{DataDir: dataDir + "/kafka", Port: port, Partitions: 3})
	if err != nil {
		t.Fatalf("embedded broker: %v", err)
	}
	return b
}

// boot builds and runs the app and waits for its projectors to subscribe;
// shutdown stops it.
func (e *Env) boot() {
	e.t.Helper()
	e.launch()
	// Tests act once the projectors have subscribed.
	if running := e.App.ProjectionsRunning(); running != nil {
		select {
		case <-running:
		case <-time.After(30 * time.Second):
			e.t.Fatal("live projectors did not subscribe within 30s")
		}
	}
	// And once the scheduler's start-up catch-up is behind it: one that
	// read the integrations after a test created its own would start runs
	// the test does not expect.
	if started := e.App.SchedulerStarted(); started != nil {
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			e.t.Fatal("scheduler did not start within 30s")
		}
	}
}

// launch builds and runs the app without waiting for its projectors.
func (e *Env) launch() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := e.log
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := app.New(ctx, e.Cfg, app.Options{Logger: logger, Roles: e.roles})
	if err != nil {
		cancel()
		e.t.Fatalf("app.New: %v", err)
	}
	if err := a.Listen(); err != nil {
		cancel()
		a.Close()
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- a.Run(ctx)
		close(exited)
	}()
	e.App, e.URL, e.exited = a, "http://"+a.Addr(), exited
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("app.Run: %v", err)
		}
		a.Close()
	}
}

func (e *Env) shutdown() {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
}

func dropSchema(databaseURL, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}

// id returns an integration id unique to this env.
func (e *Env) id(name string) string { return e.ns + "-" + name }

// integration creates an integration through the admin API and returns its
// id and secret.
func (e *Env) integration(name string, fields map[string]any) (id, secret string) {
	e.t.Helper()
	id, secret = e.id(name), "secret-"+randomID(8)
	body := map[string]any{"id": id, "organizationId": "org-" + e.ns, "webhookSecret": secret}
	for k, v := range fields {
		body[k] = v
	}
	if s, ok := body["webhookSecret"].(string); ok {
		secret = s
	}
	status, resp := e.do(http.MethodPost, "/api/v1/integrations/softpro", e.Token, body)
	if status != http.StatusCreated {
		e.t.Fatalf("create integration %s: %d %s", id, status, resp)
	}
	return id, secret
}

// do sends a JSON request and returns status and body.
func (e *Env) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	resp, raw := e.doResp(method, path, token, body)
	return resp.StatusCode, raw
}

// doResp is do returning the response, its headers for a look, and its
// body read.
func (e *Env) doResp(method, path, token string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// webhook is one signed request to the ingest endpoint.
type webhook struct {
	integration string
	secret      string
	body        []byte
	header      http.Header
}

// payload builds a SoftPro webhook body.
func payload(eventID string, typ domain.EventType, data string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"timestamp":%q,"data":%s}`, eventID, typ, time.Now().UTC().Format(time.RFC3339), data))
}

func signedWebhook(integration, secret string, body []byte) webhook {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Softpro-Signature", ingest.SignSoftPro([]byte(secret), body))
	return webhook{integration: integration, secret: secret, body: body, header: h}
}

type response struct {
	Status     int
	RetryAfter string
	Body       map[string]any
	Raw        []byte
}

// code is the error code of an error response.
func (r response) code() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// sendUntilOK sends w until it is answered 200 or within goes by, and
// returns the last answer.
func (e *Env) sendUntilOK(w webhook, within time.Duration) response {
	deadline := time.Now().Add(within)
	for {
		r := e.send(w)
		if r.Status == 200 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *Env) send(w webhook) response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/api/webhooks/softpro/"+w.integration, bytes.NewReader(w.body))
	req.Header = w.header.Clone()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("send webhook: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func (e *Env) endOffsets() kafka.Offsets {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := kafka.EndOffsets(ctx, e.Brokers, domain.AllTopics...)
	if err != nil {
		e.t.Fatalf("end offsets: %v", err)
	}
	return o
}

// records reads every record appended to topic since the env started whose
// key is one of this env's integrations, asserting along the way that the
// topic's end offsets moved by exactly that many when the broker is the
// env's own.
func (e *Env) records(topic string) []kafka.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []kafka.Record
	err := kafka.Tail(ctx, kafka.TailConfig{Brokers: e.Brokers, Topics: []string{topic}}, func(r kafka.Record) error {
		if r.Offset < e.start[topic][r.Partition] || !strings.HasPrefix(r.Key, e.ns+"-") {
			return nil
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		e.t.Fatalf("read %s: %v", topic, err)
	}
	if e.Broker != nil {
		end := e.endOffsets()
		if moved := end.Total(topic) - e.start.Total(topic); moved != int64(len(out)) {
			e.t.Fatalf("%s: end offsets moved by %d but %d records belong to this test", topic, moved, len(out))
		}
	}
	return out
}

// appendedTotal counts this env's records on every topic.
func (e *Env) appendedTotal() int {
	e.t.Helper()
	n := 0
	for _, topic := range domain.AllTopics {
		n += len(e.records(topic))
	}
	return n
}

package tests

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/errgroup"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/projections"
)

// healthView and metricsView are the answers of …/{id}/health and
// …/{id}/metrics.
type healthView struct {
	IntegrationID       string
	Status              string
	Score               int
	CheckedAt           time.Time
	Active              bool
	SyncExpected        bool
	LastEventAt         *time.Time
	LastSyncRunAt       *time.Time
	LastSuccessfulSync  *time.Time
	ErrorRate           float64
	EventsFinished24h   int64
	EventsFailed24h     int64
	SyncRunsFinished24h int64
	SyncRunsFailed24h   int64
	QueueDepth          int64
	QueueDepthPartial   bool
	Reasons             []string
}

type errorSummaryView struct {
	Source     string
	Error      string
	Count      int64
	LastSeenAt time.Time
	EventIDs   []string
	RunIDs     []int64
}

type metricsView struct {
	IntegrationID            string
	ConnectionStatus         string
	Score                    int
	LastSuccessfulSync       *time.Time
	Uptime                   float64
	UptimePeriods            map[string]float64
	WebhooksReceived24h      int64
	WebhooksProcessed24h     int64
	WebhookFailureRate       float64
	AvgWebhookProcessingTime int64
	SyncJobsCompleted24h     int64
	SyncJobsFailed24h        int64
	AvgSyncDuration          int64
	RecordsSynced24h         int64
	QueueDepth               int64
	QueueDepthPartial        bool
	OldestPendingJob         *time.Time
	ErrorRate                float64
	TopErrors                []errorSummaryView
}

func (e *Env) health(id string) healthView { return monitored[healthView](e, id, "health") }

func (e *Env) metrics(id string) metricsView { return monitored[metricsView](e, id, "metrics") }

// monitored reads the answer of route (health or metrics) of id.
func monitored[T any](e *Env, id, route string) T {
	e.t.Helper()
	status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/"+route, e.analystToken(), nil)
	if status != http.StatusOK {
		e.t.Fatalf("%s %s: %d %s", route, id, status, raw)
	}
	var v T
	apiData(e.t, raw, &v)
	return v
}

// sendAll sends each event of typ with its data and waits until each has
// the status wanted (COMPLETED, or FAILED for those in bad).
func (e *Env) sendAll(id, secret string, typ domain.EventType, data map[string]string, bad map[string]bool) {
	e.t.Helper()
	want := map[string]string{}
	for evt, d := range data {
		if r := e.send(signedWebhook(id, secret, payload(evt, typ, d))); r.Status != http.StatusOK {
			e.t.Fatalf("%s: %d %s", evt, r.Status, r.Raw)
		}
		want[evt] = "COMPLETED"
		if bad[evt] {
			want[evt] = "FAILED"
		}
	}
	e.waitStatuses(id, want)
}

// goodTasks are n task events that project.
func goodTasks(prefix string, n int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("evt_%s%d", prefix, i)] = fmt.Sprintf(`{"id":"tsk_%s%d"}`, prefix, i)
	}
	return out
}

// The status follows the spec's thresholds on real traffic: all events
// projected is HEALTHY, a tenth FAILED is DEGRADED, three in five
// UNHEALTHY; an inactive integration and one without traffic are
// DISCONNECTED; an unknown one is 404.
func TestIntegrationHealthFollowsTheThresholds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.QueueRetryDelayMs = 10 })

	ok, okSecret := e.integration("ok", nil)
	e.sendAll(ok, okSecret, domain.TaskCreated, goodTasks("ok", 3), nil)
	h := e.health(ok)
	if h.Status != "HEALTHY" || h.Score != 100 || len(h.Reasons) != 0 || h.ErrorRate != 0 || h.EventsFinished24h != 3 ||
		h.LastEventAt == nil || h.SyncExpected || !h.Active || h.IntegrationID != ok {
		t.Errorf("healthy integration: %+v", h)
	}

	// One FAILED event in ten: 10 %.
	meh, mehSecret := e.integration("meh", nil)
	events := goodTasks("meh", 9)
	events["evt_meh_bad"] = `{"title":"no id"}`
	e.sendAll(meh, mehSecret, domain.TaskCreated, events, map[string]bool{"evt_meh_bad": true})
	h = e.health(meh)
	if h.Status != "DEGRADED" || h.ErrorRate != 10 || h.EventsFailed24h != 1 || h.EventsFinished24h != 10 ||
		h.Score < 50 || h.Score > 79 || len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "error rate 10.00%") {
		t.Errorf("one event in ten failed: %+v", h)
	}

	// Three FAILED events in five: 60 %.
	bad, badSecret := e.integration("bad", nil)
	events = goodTasks("bad", 2)
	for i := range 3 {
		events[fmt.Sprintf("evt_bad_x%d", i)] = `{"title":"no id"}`
	}
	e.sendAll(bad, badSecret, domain.TaskCreated, events, map[string]bool{"evt_bad_x0": true, "evt_bad_x1": true, "evt_bad_x2": true})
	h = e.health(bad)
	if h.Status != "UNHEALTHY" || h.ErrorRate != 60 || h.Score < 1 || h.Score > 49 || len(h.Reasons) != 1 {
		t.Errorf("three events in five failed: %+v", h)
	}

	off, offSecret := e.integration("off", nil)
	e.sendAll(off, offSecret, domain.TaskCreated, goodTasks("off", 1), nil)
	if st, raw := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token, map[string]any{"integrationId": off, "active": false}); st != http.StatusOK {
		t.Fatalf("deactivate: %d %s", st, raw)
	}
	h = e.health(off)
	if h.Status != "DISCONNECTED" || h.Score != 0 || h.Active || !slices.Equal(h.Reasons, []string{"integration is inactive"}) {
		t.Errorf("inactive integration: %+v", h)
	}

	quiet, _ := e.integration("quiet", nil)
	h = e.health(quiet)
	if h.Status != "DISCONNECTED" || h.Score != 0 || h.LastEventAt != nil || len(h.Reasons) != 1 ||
		!strings.Contains(h.Reasons[0], "no event received and no sync run") {
		t.Errorf("integration without traffic: %+v", h)
	}
	if m := e.metrics(quiet); m.ConnectionStatus != "DISCONNECTED" || m.Uptime != 100 || m.WebhooksReceived24h != 0 || len(m.TopErrors) != 0 {
		t.Errorf("metrics without traffic: %+v", m)
	}

	for _, route := range []string{"health", "metrics"} {
		status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+e.id("nope")+"/"+route, e.analystToken(), nil)
		if code, _ := errCode(raw); status != http.StatusNotFound || code != "NOT_FOUND" {
			t.Errorf("%s of an unknown integration: %d %s", route, status, raw)
		}
		status, raw = e.call(http.MethodGet, "/api/v1/integrations/softpro/a%00b/"+route, e.analystToken(), nil)
		if status != http.StatusNotFound {
			t.Errorf("%s of a NUL id: %d %s", route, status, raw)
		}
	}
}

// The metrics of a hand-counted fixture: webhooks through the service,
// sync runs recorded in sync_runs at chosen times (a stored connection
// makes the integration one expected to sync).
func TestIntegrationMetricsCountTheFixture(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.QueueRetryDelayMs = 10 })
	// The hours are counted by the clock: the events must be received in
	// the hour the metrics are read in.
	waitForHourStart(t, 2*time.Minute)
	hour := time.Now().UTC().Truncate(time.Hour)
	// A frequency of a year: no scheduled run fires during the test.
	id, secret := e.integration("m", map[string]any{"syncFrequency": 525600})
	if st, raw := e.do(http.MethodPut, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token,
		map[string]any{"baseUrl": "http://127.0.0.1:1", "auth": "api_key", "apiKey": "key"}); st != http.StatusOK {
		t.Fatalf("connection: %d %s", st, raw)
	}
	// 14 webhooks: 11 project, 2 fail for a missing id, 1 for an id too
	// long for the read models. That one goes last: the poison queue
	// leaves it past its partition's checkpoint, where no later record
	// fills the hole, yet it waits for nothing.
	events := goodTasks("m", 11)
	events["evt_noid1"] = `{"title":"no id"}`
	events["evt_noid2"] = `{"title":"no id either"}`
	e.sendAll(id, secret, domain.TaskCreated, events, map[string]bool{"evt_noid1": true, "evt_noid2": true})
	e.sendAll(id, secret, domain.TaskCreated, map[string]string{"evt_long": `{"id":"` + strings.Repeat("x", 1001) + `"}`},
		map[string]bool{"evt_long": true})

	db := e.db()
	run := func(status string, started time.Time, ms int, records, errText string) int64 {
		t.Helper()
		var runID int64
		var msg *string
		if errText != "" {
			msg = &errText
		}
		err := db.QueryRow(context.Background(), `INSERT INTO sync_runs (integration_id, trigger, types, status, started_at, finished_at, records, error)
			VALUES ($1, 'scheduled', '{transactions}', $2, $3, $4, $5, $6) RETURNING id`,
			id, status, started, started.Add(time.Duration(ms)*time.Millisecond), records, msg).Scan(&runID)
		if err != nil {
			t.Fatal(err)
		}
		return runID
	}
	// Succeeded 2h55m-3h55m ago, 1 s, 7 records: the last successful sync.
	run("succeeded", hour.Add(-3*time.Hour+5*time.Minute), 1000, `{"transactions": 5, "contacts": 2}`, "")
	// Outside the day: counts for the 7d and 30d uptime only if down.
	run("succeeded", hour.Add(-30*time.Hour), 9000, `{"transactions": 100}`, "")
	// Two failed runs in the previous hour: that hour is down.
	r1 := run("failed", hour.Add(-time.Hour+10*time.Minute), 500, `{}`, "softpro api: 500 Internal Server Error")
	r2 := run("failed", hour.Add(-time.Hour+20*time.Minute), 1500, `{}`, "softpro api: 500 Internal Server Error")
	// A failed run 3 days ago: its hour is down in 7d and 30d.
	run("failed", hour.Add(-72*time.Hour), 100, `{}`, "softpro api: 401 Unauthorized")

	m := e.metrics(id)
	if now := time.Now().UTC().Truncate(time.Hour); !now.Equal(hour) {
		t.Fatalf("the hour turned during the test (%v, then %v): the figures are of another hour", hour, now)
	}
	// Errors: 3 failed events + 2 failed runs of 14 events + 3 runs.
	wantErrorRate := math.Round(5.0*10000/17) / 100
	if m.ConnectionStatus != "UNHEALTHY" || m.ErrorRate != wantErrorRate {
		t.Errorf("status %s, error rate %v; want UNHEALTHY, %v", m.ConnectionStatus, m.ErrorRate, wantErrorRate)
	}
	if m.WebhooksReceived24h != 14 || m.WebhooksProcessed24h != 11 || m.WebhookFailureRate != 21.43 {
		t.Errorf("webhooks: received %d, processed %d, failure rate %v; want 14, 11, 21.43",
			m.WebhooksReceived24h, m.WebhooksProcessed24h, m.WebhookFailureRate)
	}
	if m.SyncJobsCompleted24h != 1 || m.SyncJobsFailed24h != 2 || m.AvgSyncDuration != 1000 || m.RecordsSynced24h != 7 {
		t.Errorf("sync: completed %d, failed %d, avg %d ms, records %d; want 1, 2, 1000, 7",
			m.SyncJobsCompleted24h, m.SyncJobsFailed24h, m.AvgSyncDuration, m.RecordsSynced24h)
	}
	if m.LastSuccessfulSync == nil || !m.LastSuccessfulSync.Equal(hour.Add(-3*time.Hour+5*time.Minute+time.Second)) {
		t.Errorf("last successful sync %v", m.LastSuccessfulSync)
	}
	// Down: the current hour (3 of 14 events failed, 21.43 %) and the
	// previous one (every run failed); 3 days ago too for 7d and 30d.
	want := map[string]float64{"24h": math.Round(22.0*10000/24) / 100, "7d": math.Round(165.0*10000/168) / 100, "30d": math.Round(717.0*10000/720) / 100}
	for p, w := range want {
		if m.UptimePeriods[p] != w {
			t.Errorf("uptime %s = %v, want %v", p, m.UptimePeriods[p], w)
		}
	}
	if m.Uptime != want["24h"] {
		t.Errorf("uptime %v, want the 24h figure %v", m.Uptime, want["24h"])
	}
	if m.QueueDepth != 0 || m.OldestPendingJob != nil {
		t.Errorf("queue with everything projected: %d, %v", m.QueueDepth, m.OldestPendingJob)
	}
	if m.AvgWebhookProcessingTime < 0 {
		t.Errorf("avg processing time %d", m.AvgWebhookProcessingTime)
	}

	// topErrors: the two events without an id share an error, the sync
	// runs another; the long id and the run of 3 days ago are apart or out.
	if len(m.TopErrors) != 3 {
		t.Fatalf("top errors: %+v", m.TopErrors)
	}
	first, second, third := m.TopErrors[0], m.TopErrors[1], m.TopErrors[2]
	slices.Sort(first.EventIDs)
	if first.Count != 2 || second.Count != 2 || third.Count != 1 {
		t.Fatalf("counts %d, %d, %d, want 2, 2, 1: %+v", first.Count, second.Count, third.Count, m.TopErrors)
	}
	if first.Source == "sync" {
		first, second = second, first
		slices.Sort(first.EventIDs)
	}
	if first.Source != "webhook" || !slices.Equal(first.EventIDs, []string{"evt_noid1", "evt_noid2"}) || len(first.RunIDs) != 0 {
		t.Errorf("event error: %+v", first)
	}
	if second.Source != "sync" || second.Error != "softpro api: 500 Internal Server Error" || !slices.Equal(second.RunIDs, []int64{r2, r1}) ||
		!second.LastSeenAt.Equal(hour.Add(-time.Hour+20*time.Minute+1500*time.Millisecond)) {
		t.Errorf("sync error: %+v", second)
	}
	if third.Source != "webhook" || !slices.Equal(third.EventIDs, []string{"evt_long"}) || !strings.Contains(third.Error, "longer than") {
		t.Errorf("long id error: %+v", third)
	}

	// The health answer agrees, and names both reasons.
	h := e.health(id)
	if h.Status != "UNHEALTHY" || h.ErrorRate != wantErrorRate || !h.SyncExpected || h.SyncRunsFinished24h != 3 || h.SyncRunsFailed24h != 2 ||
		h.EventsFinished24h != 14 || h.EventsFailed24h != 3 || len(h.Reasons) != 2 || !strings.Contains(h.Reasons[1], "last successful sync") {
		t.Errorf("health: %+v", h)
	}

	// Without the connection the sync age no longer counts: the error
	// rate alone decides.
	if _, err := db.Exec(context.Background(), `DELETE FROM softpro_connections WHERE integration_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if h := e.health(id); h.SyncExpected || len(h.Reasons) != 1 || h.Status != "UNHEALTHY" {
		t.Errorf("without a connection: %+v", h)
	}
}

// An integration expected to sync whose last successful sync is 3 hours
// old is DEGRADED however clean its traffic; one that never synced counts
// the age from when its connection was stored.
func TestIntegrationHealthDegradesOnAnOldSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("s", map[string]any{"syncFrequency": 525600})
	if st, raw := e.do(http.MethodPut, "/api/v1/integrations/softpro/"+id+"/sync/connection", e.Token,
		map[string]any{"baseUrl": "http://127.0.0.1:1", "auth": "api_key", "apiKey": "key"}); st != http.StatusOK {
		t.Fatalf("connection: %d %s", st, raw)
	}
	e.sendAll(id, secret, domain.TaskCreated, goodTasks("s", 2), nil)
	// A connection stored a moment ago has missed no sync yet.
	if h := e.health(id); h.Status != "HEALTHY" || !h.SyncExpected || len(h.Reasons) != 0 {
		t.Errorf("just connected, never synced: %+v", h)
	}
	// Stored 13 hours ago and still no successful sync: UNHEALTHY.
	if _, err := e.db().Exec(context.Background(), `UPDATE softpro_connections SET updated_at = now() - interval '13 hours'
		WHERE integration_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if h := e.health(id); h.Status != "UNHEALTHY" || len(h.Reasons) != 1 ||
		!strings.HasPrefix(h.Reasons[0], "no successful sync since the connection was stored 13h0m0s ago") {
		t.Errorf("connected 13h ago, never synced: %+v", h)
	}
	finished := time.Now().Add(-3 * time.Hour)
	if _, err := e.db().Exec(context.Background(), `INSERT INTO sync_runs (integration_id, trigger, types, status, started_at, finished_at)
		VALUES ($1, 'scheduled', '{transactions}', 'succeeded', $2, $2)`, id, finished); err != nil {
		t.Fatal(err)
	}
	h := e.health(id)
	if h.Status != "DEGRADED" || h.ErrorRate != 0 || len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "over 2h0m0s") ||
		h.Score != 77 {
		t.Errorf("synced 3h ago: %+v", h)
	}
}

// queueDepth counts the integration's records on the log that no
// projector has applied: with the projectors not running, every webhook
// appended since; oldestPendingJob is the first one's append time.
func TestIntegrationMetricsQueueDepthWhileProjectorsAreStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("q", nil)
	// Another integration whose records share the partition: read, not
	// counted.
	log := kafka.NewReplayReader(e.Brokers)
	name := "other"
	for log.PartitionOf(e.id(name), e.Cfg.KafkaPartitions) != log.PartitionOf(id, e.Cfg.KafkaPartitions) {
		name += "x"
	}
	other, otherSecret := e.integration(name, nil)
	e.shutdown()
	e.roles = app.Roles{Ingest: true, API: true}
	e.launch()
	before := time.Now().Add(-time.Second)
	for i := range 4 {
		if r := e.send(signedWebhook(id, secret, payload(fmt.Sprintf("evt_q%d", i), domain.TaskCreated, fmt.Sprintf(`{"id":"t%d"}`, i)))); r.Status != http.StatusOK {
			t.Fatalf("send: %d %s", r.Status, r.Raw)
		}
	}
	if r := e.send(signedWebhook(other, otherSecret, payload("evt_o", domain.TaskCreated, `{"id":"o"}`))); r.Status != http.StatusOK {
		t.Fatalf("send: %d %s", r.Status, r.Raw)
	}
	m := e.metrics(id)
	if m.QueueDepth != 4 || m.OldestPendingJob == nil || m.OldestPendingJob.Before(before) || m.OldestPendingJob.After(time.Now()) {
		t.Fatalf("queue of 4 unprojected webhooks: depth %d, oldest %v", m.QueueDepth, m.OldestPendingJob)
	}
	if m.WebhooksReceived24h != 0 {
		t.Errorf("webhooks received counts the audit: %d", m.WebhooksReceived24h)
	}
	// Waiting records are traffic: the integration is not DISCONNECTED.
	if h := e.health(id); h.Status != "HEALTHY" || h.QueueDepth != 4 || h.LastEventAt == nil {
		t.Errorf("health with a queue: %+v", h)
	}
	if m := e.metrics(other); m.QueueDepth != 1 {
		t.Errorf("other integration's queue: %d", m.QueueDepth)
	}

	e.shutdown()
	e.roles = app.Roles{}
	e.boot()
	eventually(t, 60*time.Second, func() string {
		if m := e.metrics(id); m.QueueDepth != 0 || m.OldestPendingJob != nil || m.WebhooksReceived24h != 4 {
			return fmt.Sprintf("after projecting: depth %d, oldest %v, received %d", m.QueueDepth, m.OldestPendingJob, m.WebhooksReceived24h)
		}
		return ""
	})
}

// A backlog deeper than the queue's scan (the last QueueScanLimit offsets
// of each partition) answers at once with that many and says the figure is
// a lower bound; once projected, the queue is empty and whole again.
func TestIntegrationQueueBeyondTheScanIsPartial(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("deep", nil)
	e.shutdown()
	e.roles = app.Roles{Ingest: true, API: true}
	e.launch()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const n = projections.QueueScanLimit + 25
	var g errgroup.Group
	g.SetLimit(64)
	at := time.Now().UTC().Truncate(time.Second)
	for i := range n {
		g.Go(func() error {
			eid := fmt.Sprintf("deep_%05d", i)
			_, err := producer.Append(t.Context(), domain.Envelope{Schema: domain.SchemaV1, EventID: eid, IntegrationID: id,
				Type: domain.TaskCreated, OccurredAt: at, ReceivedAt: at, Source: domain.SourceWebhook,
				Priority: domain.TaskCreated.Priority(), Payload: event(eid, domain.TaskCreated, at, fmt.Sprintf(`{"id":"t%d"}`, i))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if h := e.health(id); h.QueueDepth != projections.QueueScanLimit || !h.QueueDepthPartial {
		t.Errorf("health with %d waiting: depth %d, partial %v; want %d, partial", n, h.QueueDepth, h.QueueDepthPartial, projections.QueueScanLimit)
	}
	if m := e.metrics(id); m.QueueDepth != projections.QueueScanLimit || !m.QueueDepthPartial || m.OldestPendingJob == nil {
		t.Errorf("metrics with %d waiting: depth %d, partial %v, oldest %v", n, m.QueueDepth, m.QueueDepthPartial, m.OldestPendingJob)
	}

	e.shutdown()
	e.roles = app.Roles{}
	e.boot()
	eventually(t, 120*time.Second, func() string {
		if m := e.metrics(id); m.QueueDepth != 0 || m.QueueDepthPartial || m.OldestPendingJob != nil || m.WebhooksReceived24h != n {
			return fmt.Sprintf("after projecting: depth %d, partial %v, oldest %v, received %d", m.QueueDepth, m.QueueDepthPartial, m.OldestPendingJob, m.WebhooksReceived24h)
		}
		return ""
	})
}

// waitForHourStart waits for the next hour when less than margin is left
// of the current one.
func waitForHourStart(t *testing.T, margin time.Duration) {
	t.Helper()
	now := time.Now()
	if next := now.Truncate(time.Hour).Add(time.Hour); next.Sub(now) < margin {
		time.Sleep(next.Sub(now) + time.Second)
	}
}

// Both routes need a token of a known role: analysts and admins read.
func TestIntegrationMonitorAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("auth", nil)
	sign := func(claims jwt.MapClaims, secret string) string {
		t.Helper()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := time.Now().Add(time.Hour).Unix()
	tokens := []struct {
		name  string
		token string
		want  int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrongly signed", sign(jwt.MapClaims{"sub": "u", "role": "admin", "exp": exp}, "not-the-secret"), http.StatusUnauthorized},
		{"expired", sign(jwt.MapClaims{"sub": "u", "role": "admin", "exp": time.Now().Add(-time.Minute).Unix()}, e.Cfg.JWTSecret), http.StatusUnauthorized},
		{"unknown role", sign(jwt.MapClaims{"sub": "u", "role": "root", "exp": exp}, e.Cfg.JWTSecret), http.StatusForbidden},
		{"analyst", e.analystToken(), http.StatusOK},
		{"admin", e.Token, http.StatusOK},
	}
	for _, route := range []string{"health", "metrics"} {
		for _, tt := range tokens {
			status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/"+route, tt.token, nil)
			if status != tt.want {
				t.Errorf("%s with %s token: %d %s, want %d", route, tt.name, status, raw, tt.want)
			}
		}
	}
}

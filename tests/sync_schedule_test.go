package tests

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/schedule"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/redis"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/infra/softpro"
	"github.com/roisystems/softprohub/ingest"
)

// process is a second softprohub process's sync side: its own Postgres
// pool, Redis client and producer over the env's services.
type process struct {
	sys   *app.SyncSystem
	store *postgres.IntegrationStore
	prod  *kafka.Producer
}

func (e *Env) process() *process {
	e.t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, e.Cfg.DatabaseURL)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	rdb, err := redis.NewClient(redis.ClientConfig{URL: e.Cfg.RedisURL})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = rdb.Close() })
	prod, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers, DeliveryTimeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(prod.Close)
	box, err := secretbox.NewFromString(e.Cfg.SecretsKey)
	if err != nil {
		e.t.Fatal(err)
	}
	store := postgres.NewIntegrationStore(pool, box)
	sys, err := app.NewSyncSystem(e.Cfg, pool, rdb, store, prod)
	if err != nil {
		e.t.Fatal(err)
	}
	return &process{sys: sys, store: store, prod: prod}
}

// syncer builds a job over the process's adapters with its own settings.
func (p *process) syncer(t *testing.T, cfg ingest.SyncConfig, locker ingest.Locker) *ingest.Syncer {
	t.Helper()
	if locker == nil {
		locker = p.sys.Locks
	}
	s, err := ingest.NewSyncer(cfg, ingest.SyncDeps{Integrations: p.store, Connections: p.sys.Store,
		API: softpro.New(softpro.Config{}), Limiter: p.sys.Limits, Locker: locker, Appender: p.prod,
		Runs: p.sys.Store, Watermarks: p.sys.Store})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *process) scheduler(stagger time.Duration) *schedule.Scheduler {
	return schedule.New(schedule.Config{MinInterval: 5, Stagger: stagger}, p.sys.Syncer, p.store, p.store, slog.New(slog.DiscardHandler))
}

func runFor(t *testing.T, s *schedule.Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

type interval struct{ from, to time.Time }

// runIntervals reads an integration's runs from sync_runs.
func runIntervals(t *testing.T, db *pgxpool.Pool, id string) (out []interval, statuses string) {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT started_at, coalesce(finished_at, now() + interval '1 day'), status FROM sync_runs WHERE integration_id=$1 ORDER BY started_at`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var st []string
	for rows.Next() {
		var iv interval
		var s string
		if err := rows.Scan(&iv.from, &iv.to, &s); err != nil {
			t.Fatal(err)
		}
		out, st = append(out, iv), append(st, s)
	}
	return out, strings.Join(st, ",")
}

func TestSyncTwoSchedulersNeverOverlapOnOneIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for i := range 3 {
		id, _ := e.syncIntegration(fmt.Sprintf("overlap-%d", i), map[string]any{"syncEnabled": true})
		ids = append(ids, id)
	}
	// Slow answers make every run last about two seconds.
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 10, Faults: sim.Faults{Slow: 1, SlowDelay: 150 * time.Millisecond}}, ids...)
	for _, id := range ids {
		e.connect(s, srv, id, false)
	}
	// Two scheduler processes start together; both find every integration
	// overdue and try to catch up at once.
	a, b := e.process(), e.process()
	stopA := runFor(t, a.scheduler(time.Millisecond))
	stopB := runFor(t, b.scheduler(time.Millisecond))
	// Meanwhile an operator asks for runs too.
	var wg sync.WaitGroup
	conflicts := 0
	var mu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+ids[0]+"/sync", e.Token, nil)
			if status == http.StatusConflict {
				mu.Lock()
				conflicts++
				mu.Unlock()
			}
		}()
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	db := e.db()
	eventually(t, 60*time.Second, func() string {
		for _, id := range ids {
			if _, st := runIntervals(t, db, id); st == "" || strings.Contains(st, "running") {
				return id + " runs: " + st
			}
		}
		return ""
	})
	stopA()
	stopB()
	for _, id := range ids {
		ivs, st := runIntervals(t, db, id)
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].from.Before(ivs[j].from) })
		for i := 1; i < len(ivs); i++ {
			if ivs[i].from.Before(ivs[i-1].to) {
				t.Fatalf("%s: runs overlap: %v and %v (%s)", id, ivs[i-1], ivs[i], st)
			}
		}
		if strings.Contains(st, "failed") {
			t.Errorf("%s: runs %s", id, st)
		}
	}
	if conflicts == 0 {
		t.Errorf("no manual request met a running sync (409)")
	}
	e.matchesSimulator(s, ids[0], 60*time.Second)
}

func TestSyncLockOfKilledProcessExpiresAndLongRunKeepsItsLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("lock", nil)
	s, srv := simulator(t, sim.Config{Records: 20, MaxPage: 5}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	ctx := ctxT(t, 2*time.Minute)

	// A process took the lock and died: nobody extends or releases it.
	dead, ok, err := p.sys.Locks.TryLock(ctx, ingest.SyncLockKey(id), 2*time.Second)
	if err != nil || !ok {
		t.Fatalf("take lock: %v %v", ok, err)
	}
	status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync", e.Token, nil)
	if status != http.StatusConflict || !strings.Contains(string(body), "SYNC_IN_PROGRESS") {
		t.Fatalf("sync while locked: %d %s", status, body)
	}
	_, body = e.do(http.MethodGet, "/api/v1/integrations/softpro/sync/status", e.Token, nil)
	if !strings.Contains(string(body), dead) {
		t.Fatalf("status does not name the holder %s: %s", dead, body)
	}
	eventually(t, 10*time.Second, func() string {
		status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", e.Token, nil)
		if status != http.StatusOK {
			return fmt.Sprintf("sync: %d %s", status, body)
		}
		return ""
	})
	e.matchesSimulator(s, id, 60*time.Second)

	// A run longer than the lock's TTL keeps extending it, so nobody else
	// gets in, and releases it when done.
	s.SetFaults(sim.Faults{Slow: 1, SlowDelay: 400 * time.Millisecond})
	long := p.syncer(t, ingest.SyncConfig{LockTTL: time.Second, RateWindow: time.Minute}, nil)
	for _, typ := range domain.SyncTypes {
		for range 5 {
			s.Modify(id, typ, "")
		}
	}
	if err := p.sys.Store.ResetWatermarks(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := long.Start(ctx, ingest.SyncRequest{IntegrationID: id})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan ingest.SyncRun, 1)
	go func() {
		run, err := st.Execute(ctx)
		if err != nil {
			t.Errorf("long run: %v", err)
		}
		done <- run
	}()
	deadline := time.After(3 * time.Second) // three TTLs
	for waiting := true; waiting; {
		select {
		case <-deadline:
			waiting = false
		case <-time.After(200 * time.Millisecond):
			if _, ok, err := p.sys.Locks.TryLock(ctx, ingest.SyncLockKey(id), time.Minute); err != nil || ok {
				t.Fatalf("took the lock of a running sync: %v %v", ok, err)
			}
		}
	}
	run := <-done
	if run.Status != ingest.RunSucceeded || run.Requests < 8 {
		t.Fatalf("long run: %+v", run)
	}
	if holder, _, _ := p.sys.Locks.Holder(ctx, ingest.SyncLockKey(id)); holder != "" {
		t.Fatalf("lock still held by %s after the run", holder)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

func TestSyncCatchUpAfterDowntimeAndScheduleChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Frequencies that divide neither an hour nor a day run "@every", an
	// interval after the last scheduled sync (or the creation): no slot
	// falls within the test, whatever the time of day (the service's own
	// scheduler runs too).
	overdue, _ := e.syncIntegration("overdue", map[string]any{"syncEnabled": true, "syncFrequency": 45})
	recent, _ := e.syncIntegration("recent", map[string]any{"syncEnabled": true, "syncFrequency": 90})
	off, _ := e.syncIntegration("off", map[string]any{"syncEnabled": false})
	s, srv := simulator(t, sim.Config{Records: 10}, overdue, recent, off)
	for _, id := range []string{overdue, recent, off} {
		e.connect(s, srv, id, false)
	}
	p := e.process()
	ctx := ctxT(t, time.Minute)
	set := func(id string, fn func(*domain.Integration)) {
		t.Helper()
		if _, err := p.store.Update(ctx, id, func(in *domain.Integration) error { fn(in); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// The service was down for two hours after overdue's last scheduled
	// sync; recent's happened a minute ago.
	set(overdue, func(in *domain.Integration) { at := time.Now().Add(-2 * time.Hour); in.LastScheduledSyncAt = &at })
	set(recent, func(in *domain.Integration) { at := time.Now().Add(-time.Minute); in.LastScheduledSyncAt = &at })

	sched := p.scheduler(time.Millisecond)
	runFor(t, sched)
	<-sched.Loaded()
	db := e.db()
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT trigger, status FROM sync_runs WHERE integration_id=$1`, overdue)
		if got != "catch-up succeeded" {
			return "overdue runs: " + got
		}
		return ""
	})
	e.matchesSimulator(s, overdue, 60*time.Second)
	if got := queryString(t, db, `SELECT count(*) FROM sync_runs WHERE integration_id = ANY($1)`, []string{recent, off}); got != "0" {
		t.Errorf("runs of integrations not due: %s", got)
	}
	entries := sched.Entries()
	if entries[overdue] != "@every 45m" || entries[recent] != "@every 90m" || entries[off] != "" {
		t.Fatalf("entries: %v", entries)
	}
	_, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/sync/status", e.Token, nil)
	if !strings.Contains(string(body), `"cronExpression":"@every 45m"`) || !strings.Contains(string(body), `"trigger":"catch-up"`) {
		t.Errorf("status: %s", body)
	}
	// Changes take effect without a restart: the frequency is clamped to
	// SYNC_MIN_INTERVAL, turning sync off removes the schedule.
	set(recent, func(in *domain.Integration) { in.SyncFrequency = 2 })
	set(overdue, func(in *domain.Integration) { in.SyncEnabled = false })
	set(off, func(in *domain.Integration) { in.SyncEnabled = true; in.SyncFrequency = 120 })
	eventually(t, 10*time.Second, func() string {
		got := sched.Entries()
		if got[recent] != "*/5 * * * *" || got[overdue] != "" || got[off] != "0 */2 * * *" {
			return fmt.Sprintf("entries after changes: %v", got)
		}
		return ""
	})
}

func TestSyncTwoProcessesNeverExceedTheQuota(t *testing.T) {
	t.Parallel()
	const limit, window = 20, time.Second
	e := newEnv(t, func(c *app.Config) { c.RateLimitWindowMs = int(window / time.Millisecond) })
	id, _ := e.syncIntegration("quota", map[string]any{"rateLimit": limit})
	s, srv := simulator(t, sim.Config{Records: 60, MaxPage: 6, RateLimit: limit, RateWindow: window}, id)
	e.connect(s, srv, id, false)
	// Two processes pull the same integration at the same time. The lock
	// would serialise them, so here each ignores it: only the shared token
	// bucket stands between them and SoftPro's quota.
	a, b := e.process(), e.process()
	cfg := ingest.SyncConfig{RateWindow: window}
	ja, jb := a.syncer(t, cfg, noLock{}), b.syncer(t, cfg, noLock{})
	ctx := ctxT(t, 2*time.Minute)
	var wg sync.WaitGroup
	runs := make([]ingest.SyncRun, 2)
	for i, j := range []*ingest.Syncer{ja, jb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run, err := j.Sync(ctx, ingest.SyncRequest{IntegrationID: id})
			if err != nil {
				t.Errorf("process %d: %v", i, err)
			}
			runs[i] = run
		}()
	}
	wg.Wait()
	st := s.Stats(id)
	peak := s.MaxInWindow(id, window)
	t.Logf("requests %d, peak %d per %s, quota exceeded %d, runs %d+%d requests", st.Requests, peak, window, st.QuotaExceeded, runs[0].Requests, runs[1].Requests)
	if st.Requests < 3*limit {
		t.Fatalf("only %d requests: the test did not load the quota", st.Requests)
	}
	if peak > limit || st.QuotaExceeded != 0 {
		t.Fatalf("peak %d requests in a %s window (quota %d), %d answered 429", peak, window, limit, st.QuotaExceeded)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

// noLock grants every lock: it stands in for a process that does not
// coordinate, to show the rate limit holds on its own.
type noLock struct{}

func (noLock) TryLock(context.Context, string, time.Duration) (string, bool, error) {
	return "none", true, nil
}
func (noLock) Extend(context.Context, string, string, time.Duration) (bool, error) { return true, nil }
func (noLock) Unlock(context.Context, string, string) error                        { return nil }

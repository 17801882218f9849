package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// In-memory stand-ins for a sync run's collaborators, for unit tests of the
// run's logic; tests/ runs the same job against Postgres, Redis, the
// broker and the SoftPro simulator.

type memIntegrations struct {
	mu sync.Mutex
	in domain.Integration
}

func (f *memIntegrations) Integration(context.Context, string) (domain.Integration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.in, nil
}

func (f *memIntegrations) Update(_ context.Context, _ string, fn func(*domain.Integration) error) (domain.Integration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := fn(&f.in)
	return f.in, err
}

func (f *memIntegrations) set(fn func(*domain.Integration)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.in)
}

type memConnections struct{}

func (memConnections) Connection(context.Context, string) (domain.SoftProConnection, error) {
	return domain.SoftProConnection{BaseURL: "http://softpro.test", Auth: domain.AuthAPIKey, APIKey: "k"}, nil
}

// memAPI serves its records changed since the request's ModifiedSince, in
// pages of two; onPage runs before each page with its number (from 1).
type memAPI struct {
	mu     sync.Mutex
	recs   []Record
	pages  int
	onPage func(n int)
}

func (a *memAPI) List(_ context.Context, _ domain.SoftProConnection, req PageRequest) (Page, error) {
	a.mu.Lock()
	a.pages++
	n, recs := a.pages, a.recs
	a.mu.Unlock()
	if a.onPage != nil {
		a.onPage(n)
	}
	var out []Record
	for _, r := range recs {
		if req.ModifiedSince.IsZero() || !r.UpdatedAt.Before(req.ModifiedSince) {
			out = append(out, r)
		}
	}
	start, _ := strconv.Atoi(req.Cursor)
	end := min(start+2, len(out))
	p := Page{Records: out[start:end]}
	if end < len(out) {
		p.NextCursor = strconv.Itoa(end)
	}
	return p, nil
}

// memLimiter lets every request through and records the quota it was
// asked for.
type memLimiter struct {
	mu     sync.Mutex
	limits []int
}

func (l *memLimiter) Wait(_ context.Context, _ string, q Quota) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limits = append(l.limits, q.Limit)
	return nil
}

func (l *memLimiter) Drain(context.Context, string, Quota, time.Duration) error { return nil }

func (l *memLimiter) RemainingQuota(_ context.Context, _ string, q Quota) (int, time.Duration, error) {
	return q.Limit, 0, nil
}

type memLocker struct{}

func (memLocker) TryLock(context.Context, string, time.Duration) (string, bool, error) {
	return "token", true, nil
}
func (memLocker) Extend(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}
func (memLocker) Unlock(context.Context, string, string) error { return nil }

type memAppender struct {
	mu  sync.Mutex
	ids []string
}

func (a *memAppender) Append(_ context.Context, e domain.Envelope) (Position, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, e.EventID)
	return Position{}, nil
}

func (a *memAppender) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

type memRuns struct{}

func (memRuns) StartRun(context.Context, SyncRun) (int64, error) { return 1, nil }
func (memRuns) FinishRun(context.Context, SyncRun) error         { return nil }

type memWatermarks struct {
	mu    sync.Mutex
	marks map[string]SyncMark
}

func (w *memWatermarks) Watermark(_ context.Context, _, t string) (SyncMark, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.marks[t], nil
}

func (w *memWatermarks) SetWatermark(_ context.Context, _, t string, m SyncMark) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.marks == nil {
		w.marks = map[string]SyncMark{}
	}
	w.marks[t] = m
	return nil
}

// memSync is a syncer of one integration syncing transactions, and its
// collaborators.
type memSync struct {
	syncer *Syncer
	in     *memIntegrations
	api    *memAPI
	limits *memLimiter
	log    *memAppender
}

func newMemSync(t *testing.T, rateLimit int, recs []Record) *memSync {
	t.Helper()
	m := &memSync{
		in: &memIntegrations{in: domain.Integration{ID: "int_a", Active: true, SyncEnabled: true,
			SyncTypes: []string{domain.SyncTransactions}, RateLimit: rateLimit}},
		api: &memAPI{recs: recs}, limits: &memLimiter{}, log: &memAppender{},
	}
	s, err := NewSyncer(SyncConfig{PageSize: 2}, SyncDeps{Integrations: m.in, Connections: memConnections{}, API: m.api,
		Limiter: m.limits, Locker: memLocker{}, Appender: m.log, Runs: memRuns{}, Watermarks: &memWatermarks{}})
	if err != nil {
		t.Fatal(err)
	}
	m.syncer = s
	return m
}

// transactionsEvery returns n transaction records updated step apart from
// first.
func transactionsEvery(first time.Time, n int, step time.Duration) []Record {
	out := make([]Record, 0, n)
	for i := range n {
		id, at := fmt.Sprintf("txn_%03d", i), first.Add(time.Duration(i)*step).UTC()
		raw, _ := json.Marshal(map[string]any{"id": id, "updated_at": at})
		out = append(out, Record{ID: id, UpdatedAt: at, Raw: raw})
	}
	return out
}

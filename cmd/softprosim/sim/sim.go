// Package sim is the SoftPro side of softprohub's tests, demos and
// benchmarks: seeded, deterministic tenants with realistic records of every
// sync type, served through the API contract of docs/softpro-api.md, changed
// over time, with injectable faults and a sliding-window quota measured
// where SoftPro would measure it. softprosim serve runs it; the tests in
// tests/ run it in process.
package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Config describes the simulated SoftPro installation.
type Config struct {
	// Seed decides every generated value; the same seed gives the same data.
	Seed uint64
	// Tenants are the integration ids served, each under /t/{id}.
	Tenants []string
	// Records is the number of records of each type per tenant at start.
	Records int
	// Epoch is the newest seeded updated_at; seeded records spread over the
	// 90 days before it. Default 2025-01-01T00:00:00Z.
	Epoch time.Time
	// RateLimit requests per RateWindow per tenant, over any sliding window;
	// 0 turns the quota off. RateWindow defaults to 1 minute.
	RateLimit  int
	RateWindow time.Duration
	// DefaultPage and MaxPage bound page sizes; defaults 100 and 1000.
	DefaultPage int
	MaxPage     int
	Faults      Faults
}

// Faults are injected into list requests, decided by the seeded generator.
type Faults struct {
	// RateLimited is the fraction of requests answered 429 whatever the
	// quota, with Retry-After RetryAfter (default 1 s).
	RateLimited float64       `json:"rateLimited"`
	RetryAfter  time.Duration `json:"retryAfter"`
	// ServerErrors is the fraction of requests answered 500, 502 or 503.
	ServerErrors float64 `json:"serverErrors"`
	// Malformed is the fraction of requests answered 200 with the page's
	// JSON cut off halfway (a proxy or SoftPro failing mid-answer).
	Malformed float64 `json:"malformed"`
	// Stuck answers every page asked for with a cursor with no records and
	// that same cursor, for ever: a SoftPro that never reaches its last
	// page.
	Stuck bool `json:"stuck"`
	// Slow is the fraction of requests delayed by SlowDelay.
	Slow      float64       `json:"slow"`
	SlowDelay time.Duration `json:"slowDelay"`
	// Edges turns on pagination edge cases: short pages, an empty page with
	// a cursor, the last record of a page repeated on the next one, and an
	// empty last page after a full one.
	Edges bool `json:"edges"`
}

// Record is one SoftPro record.
type Record struct {
	Type      string
	ID        string
	UpdatedAt time.Time
	fields    map[string]any
	raw       json.RawMessage
}

// JSON is the record as the API serves it.
func (r *Record) JSON() json.RawMessage { return r.raw }

func (r *Record) render() {
	r.fields["id"] = r.ID
	r.fields["updated_at"] = r.UpdatedAt.UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(r.fields)
	if err != nil {
		panic(fmt.Sprintf("sim: render %s %s: %v", r.Type, r.ID, err))
	}
	r.raw = b
}

func (r *Record) less(o *Record) bool {
	if !r.UpdatedAt.Equal(o.UpdatedAt) {
		return r.UpdatedAt.Before(o.UpdatedAt)
	}
	return r.ID < o.ID
}

// Tenant is one integration's SoftPro installation.
type Tenant struct {
	ID           string
	APIKey       string
	ClientID     string
	ClientSecret string
	// list holds each type's records ordered by (updated_at, id).
	list map[string][]*Record
	byID map[string]map[string]*Record
	// arrivals are the times of every list request that reached the API.
	arrivals []time.Time
	// window holds the times of requests inside the quota window.
	window []time.Time
	stats  Stats
}

// Stats count what a tenant's API saw.
type Stats struct {
	Requests       int `json:"requests"`
	QuotaExceeded  int `json:"quotaExceeded"`
	Injected429    int `json:"injected429"`
	Injected5xx    int `json:"injected5xx"`
	InjectedBroken int `json:"injectedMalformed"`
	TokensIssued   int `json:"tokensIssued"`
	Unauthorized   int `json:"unauthorized"`
	RecordsServed  int `json:"recordsServed"`
	ChangesApplied int `json:"changesApplied"`
}

// Sim is the simulated SoftPro. It is safe for concurrent use.
type Sim struct {
	mu      sync.Mutex
	cfg     Config
	tenants map[string]*Tenant
	rng     *rand.Rand
	last    time.Time // newest updated_at handed out; strictly increasing
	now     func() time.Time
	tokens  map[string]string // bearer token → tenant
}

// New generates the tenants' records.
func New(cfg Config) *Sim {
	if cfg.Epoch.IsZero() {
		cfg.Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.RateWindow == 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.DefaultPage == 0 {
		cfg.DefaultPage = 100
	}
	if cfg.MaxPage == 0 {
		cfg.MaxPage = 1000
	}
	if cfg.Faults.RetryAfter == 0 {
		cfg.Faults.RetryAfter = time.Second
	}
	s := &Sim{cfg: cfg, tenants: map[string]*Tenant{}, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		now: time.Now, tokens: map[string]string{}, last: cfg.Epoch}
	for ti, id := range cfg.Tenants {
		t := &Tenant{ID: id, APIKey: "sk_" + digest(cfg.Seed, id, "key"), ClientID: "client_" + id,
			ClientSecret: "cs_" + digest(cfg.Seed, id, "secret"),
			list:         map[string][]*Record{}, byID: map[string]map[string]*Record{}}
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(ti)+1))
		for _, typ := range domain.SyncTypes {
			recs := make([]*Record, 0, cfg.Records)
			t.byID[typ] = make(map[string]*Record, cfg.Records)
			for i := range cfg.Records {
				// Spread over 90 days, one millisecond apart at least.
				age := time.Duration(rng.Int64N(int64(90*24*time.Hour/time.Millisecond))) * time.Millisecond
				r := &Record{Type: typ, ID: fmt.Sprintf("%s_%06d", prefix(typ), i+1),
					UpdatedAt: cfg.Epoch.Add(-age).Truncate(time.Millisecond)}
				r.fields = generate(rng, typ, i+1, cfg.Records, r.UpdatedAt)
				r.render()
				recs = append(recs, r)
				t.byID[typ][r.ID] = r
			}
			sort.Slice(recs, func(i, j int) bool { return recs[i].less(recs[j]) })
			t.list[typ] = recs
		}
		s.tenants[id] = t
	}
	return s
}

func digest(seed uint64, parts ...string) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(seed) + "\x00" + strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}

func prefix(typ string) string {
	switch typ {
	case domain.SyncTransactions:
		return "txn"
	case domain.SyncContacts:
		return "con"
	case domain.SyncDocuments:
		return "doc"
	default:
		return "tsk"
	}
}

// Tenant returns a tenant's credentials (not its records).
func (s *Sim) Tenant(id string) (Tenant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[id]
	if !ok {
		return Tenant{}, false
	}
	return Tenant{ID: t.ID, APIKey: t.APIKey, ClientID: t.ClientID, ClientSecret: t.ClientSecret}, true
}

// Tenants lists the tenant ids.
func (s *Sim) Tenants() []string { return slices.Clone(s.cfg.Tenants) }

// Snapshot returns copies of a tenant's current records of one type, in
// (updated_at, id) order.
func (s *Sim) Snapshot(tenant, typ string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return nil
	}
	out := make([]Record, len(t.list[typ]))
	for i, r := range t.list[typ] {
		out[i] = Record{Type: r.Type, ID: r.ID, UpdatedAt: r.UpdatedAt, raw: r.raw}
	}
	return out
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	s.cfg.Faults = f
}

// SetQuota changes the per-tenant quota; limit 0 turns it off.
func (s *Sim) SetQuota(limit int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.RateLimit, s.cfg.RateWindow = limit, window
}

// RevokeTokens forgets every OAuth token issued: the next request with one
// is answered 401, as when a SoftPro token expires before its time.
func (s *Sim) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Stats returns a tenant's counters.
func (s *Sim) Stats(tenant string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tenants[tenant]; ok {
		return t.stats
	}
	return Stats{}
}

// MaxInWindow is the largest number of list requests of a tenant that
// arrived within any sliding window of length w.
func (s *Sim) MaxInWindow(tenant string, w time.Duration) int {
	s.mu.Lock()
	t, ok := s.tenants[tenant]
	var times []time.Time
	if ok {
		times = slices.Clone(t.arrivals)
	}
	s.mu.Unlock()
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// tick returns a fresh updated_at: now, but strictly after every one handed
// out before, in whole milliseconds.
func (s *Sim) tick() time.Time {
	t := s.now().UTC().Truncate(time.Millisecond)
	if !t.After(s.last) {
		t = s.last.Add(time.Millisecond)
	}
	s.last = t
	return t
}

// Change is one change the simulator made to a record.
type Change struct {
	Tenant string
	Type   string
	// Event is the webhook event type SoftPro would send for it.
	Event  domain.EventType
	Record Record
}

// Modify changes one record of a tenant (a random one when id is empty)
// and returns the change. ok is false when there is no such record.
func (s *Sim) Modify(tenant, typ, id string) (Change, bool) {
	return s.change(tenant, typ, id, 0)
}

// Pad changes a record as Modify does and gives it a "notes" field of n
// bytes: a record too large for what reads it.
func (s *Sim) Pad(tenant, typ, id string, n int) (Change, bool) {
	return s.change(tenant, typ, id, n)
}

// ChangeAt changes a record as Modify does but stamps it at instead of
// now: a change written by a SoftPro server whose clock runs ahead of or
// behind the others. The record takes its place in (updated_at, id)
// order; later changes are stamped as before, unaffected by at. ok is
// false when there is no such record or at is not after the record's
// current updated_at (updated_at increases with every change of a record).
func (s *Sim) ChangeAt(tenant, typ, id string, at time.Time) (Change, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return Change{}, false
	}
	at = at.UTC().Truncate(time.Millisecond) // as every change is stamped
	r, ok := t.byID[typ][id]
	if !ok || !at.After(r.UpdatedAt) {
		return Change{}, false
	}
	ev := mutate(s.rng, r)
	list := t.list[typ]
	i := sort.Search(len(list), func(i int) bool { return !list[i].less(r) })
	if i < len(list) && list[i] == r {
		list = append(list[:i], list[i+1:]...)
	}
	r.UpdatedAt = at
	r.render()
	j := sort.Search(len(list), func(i int) bool { return r.less(list[i]) })
	list = slices.Insert(list, j, r)
	t.list[typ] = list
	t.stats.ChangesApplied++
	return Change{Tenant: tenant, Type: typ, Event: ev, Record: Record{Type: r.Type, ID: r.ID, UpdatedAt: r.UpdatedAt, raw: r.raw}}, true
}

func (s *Sim) change(tenant, typ, id string, pad int) (Change, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok || len(t.list[typ]) == 0 {
		return Change{}, false
	}
	var r *Record
	if id == "" {
		r = t.list[typ][s.rng.IntN(len(t.list[typ]))]
	} else if r, ok = t.byID[typ][id]; !ok {
		return Change{}, false
	}
	ev := mutate(s.rng, r)
	if pad > 0 {
		r.fields["notes"] = strings.Repeat("x", pad)
	}
	// Move r to its place in (updated_at, id) order: the end, unless a
	// change stamped ahead by ChangeAt is newer still.
	list := t.list[typ]
	i := sort.Search(len(list), func(i int) bool { return !list[i].less(r) })
	if i < len(list) && list[i] == r {
		list = append(list[:i], list[i+1:]...)
	}
	r.UpdatedAt = s.tick()
	r.render()
	j := sort.Search(len(list), func(i int) bool { return r.less(list[i]) })
	t.list[typ] = slices.Insert(list, j, r)
	t.stats.ChangesApplied++
	return Change{Tenant: tenant, Type: typ, Event: ev, Record: Record{Type: r.Type, ID: r.ID, UpdatedAt: r.UpdatedAt, raw: r.raw}}, true
}

// ModifyRandom changes a random record of a random tenant and type.
func (s *Sim) ModifyRandom() (Change, bool) {
	s.mu.Lock()
	tenant := s.cfg.Tenants[s.rng.IntN(len(s.cfg.Tenants))]
	typ := domain.SyncTypes[s.rng.IntN(len(domain.SyncTypes))]
	s.mu.Unlock()
	return s.Modify(tenant, typ, "")
}

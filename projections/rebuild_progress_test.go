package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// cpStore is a memStore that keeps checkpoints too, safe for the
// rebuild's workers, and counts the audit rows written while its target
// holds the live projectors paused.
type cpStore struct {
	*memStore
	mu           sync.Mutex
	checkpoints  map[string]map[Partition]int64
	paused       *atomic.Bool
	savedPaused  int
	auditWritten int
	// lookups counts the loads of audit or entity rows, by whether they
	// locked them.
	lookups map[bool]int
	// panicSave makes Save panic, as a bug in a projection would.
	panicSave bool
}

func (s *cpStore) InTx(ctx context.Context, fn func(context.Context, Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(ctx, s)
}

func (s *cpStore) Load(ctx context.Context, q Query) (Snapshot, error) {
	snap, err := s.memStore.Load(ctx, q)
	if len(q.Events) > 0 || len(q.Entities) > 0 {
		if s.lookups == nil {
			s.lookups = map[bool]int{}
		}
		s.lookups[!q.Unlocked]++
	}
	for _, p := range q.Partitions {
		name := q.Projection
		if n, ok := q.Names[p.Topic]; ok {
			name = n
		}
		if next, ok := s.checkpoints[name][p]; ok {
			snap.Checkpoints[p] = next
		}
	}
	return snap, err
}

func (s *cpStore) Save(ctx context.Context, w Writes) error {
	if s.panicSave {
		panic("projection bug")
	}
	for _, c := range w.Checkpoints {
		cur, ok := s.checkpoints[c.Projection][c.Partition]
		if !ok {
			cur = -1
		}
		if cur != c.Prev {
			return fmt.Errorf("checkpoint %v moved: %w", c.Partition, ErrCheckpointMoved)
		}
		if s.checkpoints[c.Projection] == nil {
			s.checkpoints[c.Projection] = map[Partition]int64{}
		}
		s.checkpoints[c.Projection][c.Partition] = c.Next
	}
	s.auditWritten += len(w.Audit)
	if s.paused.Load() {
		s.savedPaused += len(w.Audit)
	}
	return s.memStore.Save(ctx, w)
}

// memTarget is a RebuildTarget over one cpStore.
type memTarget struct {
	store     *cpStore
	paused    atomic.Bool
	committed []string
	// released lists the schemas whose store Release was called for;
	// sealErr fails Seal.
	released []string
	created  map[Store]string
	dropped  []string
	sealErr  error
}

func newMemTarget() *memTarget {
	t := &memTarget{}
	t.store = &cpStore{memStore: newMemStore(), checkpoints: map[string]map[Partition]int64{}, paused: &t.paused}
	return t
}

func (t *memTarget) Create(_ context.Context, schema string) (Store, error) {
	if t.created == nil {
		t.created = map[Store]string{}
	}
	t.created[t.store] = schema
	return t.store, nil
}
func (t *memTarget) Seal(context.Context, string) error { return t.sealErr }
func (t *memTarget) Drop(_ context.Context, schema string) error {
	t.dropped = append(t.dropped, schema)
	return nil
}
func (t *memTarget) Release(store Store) { t.released = append(t.released, t.created[store]) }

func (t *memTarget) Checkpoints(_ context.Context, _, name string) (map[Partition]int64, error) {
	t.store.mu.Lock()
	defer t.store.mu.Unlock()
	out := map[Partition]int64{}
	for p, o := range t.store.checkpoints[name] {
		out[p] = o
	}
	return out, nil
}

func (t *memTarget) Pause(context.Context) (Swap, error) {
	t.paused.Store(true)
	return memSwap{t}, nil
}

type memSwap struct{ t *memTarget }

func (s memSwap) Commit(_ context.Context, schema, _ string, _ []string) error {
	s.t.committed = append(s.t.committed, schema)
	s.t.paused.Store(false)
	return nil
}

func (s memSwap) Abort(context.Context) error {
	s.t.paused.Store(false)
	return nil
}

// memRuns records nothing.
type memRuns struct{}

func (memRuns) Begin(context.Context, RebuildRun) (int64, []RebuildRun, func(), error) {
	return 1, nil, func() {}, nil
}
func (memRuns) Update(context.Context, RebuildRun) error { return nil }
func (memRuns) Claim(context.Context, string) (func(), error) {
	return func() {}, nil
}

// growingLog is a fakeLog the live traffic keeps appending to while the
// live projectors run: each scan, as it starts, appends the next count of
// grow (none once they are used up, or while paused). Before handing over
// each record, it calls before with the scan's number and the record's
// index in it.
type growingLog struct {
	fakeLog
	grow   []int
	paused *atomic.Bool
	next   int
	scans  int
	before func(scan, i int)
}

func (g *growingLog) addContacts(n int) {
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	for range n {
		g.next++
		g.add(domain.ContactCreated, fmt.Sprintf("e%04d", g.next), t0.Add(time.Duration(g.next)*time.Second),
			fmt.Sprintf(`{"id":"con_%04d","email":"c%04d@example.com"}`, g.next, g.next))
	}
}

func (g *growingLog) Scan(ctx context.Context, req ScanRequest, fn func([]ScannedRecord) error) error {
	scan := g.scans
	g.scans++
	if len(g.grow) > 0 && !g.paused.Load() {
		g.addContacts(g.grow[0])
		g.grow = g.grow[1:]
	}
	i := 0
	return g.fakeLog.Scan(ctx, req, func(recs []ScannedRecord) error {
		if g.before != nil {
			g.before(scan, i)
		}
		i++
		return fn(recs)
	})
}

// A rebuild whose log grows while it builds catches up with the head in
// passes, live projectors running, until no more than PauseBelow offsets
// are left, and only then pauses them for the last few. Its progress
// counts the offsets left down while it builds, with an estimate of the
// time they need, and ends with nothing left and every record applied.
func TestRebuildCatchesUpBeforePausing(t *testing.T) {
	t.Parallel()
	const (
		initial    = 60
		pauseBelow = 10
	)
	// Appended during the first pass, then during each catch-up pass: 40
	// and 25 are more than a pause may take, 4 is not.
	grow := []int{40, 25, 4}

	target := newMemTarget()
	log := &growingLog{grow: grow, paused: &target.paused}
	log.addContacts(initial)

	var (
		mu      sync.Mutex
		reports []RebuildRun
		latest  atomic.Int64 // Applied of the newest report
	)
	// Each record of the first pass waits for a report showing every
	// record before it applied, so that the first pass is seen mid-way
	// at every step.
	log.before = func(scan, i int) {
		if scan != 0 {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for latest.Load() < int64(i) {
			if time.Now().After(deadline) {
				t.Errorf("no report of %d records applied within 5 s", i)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	cfg := RebuildConfig{
		LiveSchema:    "live",
		Topics:        []string{domain.TopicContacts},
		Names:         map[string]string{domain.TopicContacts: "contacts"},
		BatchSize:     1,
		Workers:       1,
		PauseBelow:    pauseBelow,
		ProgressEvery: time.Millisecond,
		OnProgress: func(r RebuildRun) {
			mu.Lock()
			reports = append(reports, r)
			mu.Unlock()
			latest.Store(r.Progress.Applied)
		},
	}
	rb, err := NewRebuilder(cfg, target, memRuns{}, log)
	if err != nil {
		t.Fatal(err)
	}
	run, err := rb.Rebuild(context.Background())
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}

	total := int64(initial)
	for _, n := range grow {
		total += int64(n)
	}
	if run.State != StateDone || run.Progress.Applied != total || run.Progress.Left != 0 || run.Progress.ETA != 0 {
		t.Errorf("final run %s, applied %d, left %d, ETA %v; want done, %d applied, 0 left, no ETA",
			run.State, run.Progress.Applied, run.Progress.Left, run.Progress.ETA, total)
	}
	if len(target.committed) != 1 || target.committed[0] != run.Schema {
		t.Errorf("swaps committed %v, want one of %s", target.committed, run.Schema)
	}
	// Every pass was a scan: the first, two catch-ups, and the paused one.
	if log.scans != 4 {
		t.Errorf("%d scans, want the first pass, 2 catch-up passes and the paused one", log.scans)
	}
	if target.store.savedPaused > pauseBelow || target.store.savedPaused == 0 {
		t.Errorf("%d records applied while the live projectors were paused, want 1 to %d", target.store.savedPaused, pauseBelow)
	}
	if got := target.store.auditWritten; int64(got) != total {
		t.Errorf("%d audit rows written, want one for each of the %d records", got, total)
	}
	cps, _ := target.Checkpoints(context.Background(), run.Schema, "contacts")
	if next := cps[Partition{Topic: domain.TopicContacts}]; next != total {
		t.Errorf("checkpoint at %d, want the head %d", next, total)
	}
	for i := 1; i <= int(total); i++ {
		k := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindContact, ID: fmt.Sprintf("con_%04d", i)}
		if _, ok := target.store.entities[k]; !ok {
			t.Errorf("%s was not rebuilt", k.ID)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	states := map[RebuildState]bool{}
	var building []RebuildRun
	for _, r := range reports {
		states[r.State] = true
		if r.State == StateBuilding && r.Progress.Applied > 0 && r.Progress.Applied < initial {
			building = append(building, r)
		}
	}
	for _, s := range []RebuildState{StateBuilding, StateSealing, StateCatchingUp, StatePaused, StateDone} {
		if !states[s] {
			t.Errorf("no report in state %s", s)
		}
	}
	if len(building) < initial/2 {
		t.Fatalf("%d reports in the middle of the first pass, want one after about each of its %d records", len(building), initial)
	}
	for i, r := range building {
		if r.Progress.Left != initial-r.Progress.Applied {
			t.Errorf("mid first pass: %d applied and %d left, want %d left", r.Progress.Applied, r.Progress.Left, initial-r.Progress.Applied)
		}
		if r.Progress.ETA <= 0 || r.Progress.Rate <= 0 {
			t.Errorf("mid first pass, %d left: ETA %v at %.1f records/s, want an estimate", r.Progress.Left, r.Progress.ETA, r.Progress.Rate)
		}
		if i > 0 && r.Progress.Left > building[i-1].Progress.Left {
			t.Errorf("offsets left went up from %d to %d", building[i-1].Progress.Left, r.Progress.Left)
		}
	}
	if first, last := building[0].Progress.Left, building[len(building)-1].Progress.Left; first <= last {
		t.Errorf("offsets left went from %d to %d while building, want them counted down", first, last)
	}
	if last := reports[len(reports)-1]; last.State != StateDone || last.Progress.Left != 0 {
		t.Errorf("last report %s with %d left, want done with none", last.State, last.Progress.Left)
	}
}

// A rebuild's or an as-of build's run records how many offsets its first
// pass had to apply, in the reports made while it runs and in the run it
// returns.
func TestRebuildRecordsOffsetsAtStart(t *testing.T) {
	t.Parallel()
	target := newMemTarget()
	log := &growingLog{paused: &target.paused}
	log.addContacts(5)
	var (
		mu      sync.Mutex
		reports []RebuildRun
	)
	cfg := RebuildConfig{
		LiveSchema: "live",
		Topics:     []string{domain.TopicContacts},
		Names:      map[string]string{domain.TopicContacts: "contacts"},
		OnProgress: func(r RebuildRun) {
			mu.Lock()
			reports = append(reports, r)
			mu.Unlock()
		},
	}
	rb, err := NewRebuilder(cfg, target, memRuns{}, log)
	if err != nil {
		t.Fatal(err)
	}
	run, err := rb.Rebuild(context.Background())
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if run.End != 5 {
		t.Errorf("returned run: %d offsets at start, want 5", run.End)
	}
	asOf, err := rb.AsOf(context.Background(), time.Now(), "live_as_of", false)
	if err != nil {
		t.Fatalf("as-of: %v", err)
	}
	if asOf.End != 5 {
		t.Errorf("returned as-of run: %d offsets at start, want 5", asOf.End)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reports {
		if r.State != StateBuilding && r.End != 5 {
			t.Errorf("%s report in state %s: %d offsets at start, want 5", r.Kind, r.State, r.End)
		}
	}
}

// A point-in-time build releases what it opened to write its schema,
// whether it ends well or not; the schema stays for analysts when it ends
// well, and is dropped when it does not.
func TestAsOfReleasesItsStore(t *testing.T) {
	t.Parallel()
	for _, sealErr := range []error{nil, errors.New("index build failed")} {
		target := newMemTarget()
		target.sealErr = sealErr
		rb, err := NewRebuilder(RebuildConfig{LiveSchema: "live", Topics: []string{domain.TopicTransactions},
			Names: map[string]string{domain.TopicTransactions: "transactions"}}, target, memRuns{}, &fakeLog{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = rb.AsOf(context.Background(), time.Now(), "copy_1", false)
		if (err != nil) != (sealErr != nil) || fmt.Sprint(target.released) != "[copy_1]" {
			t.Errorf("seal error %v: as-of returned %v, released %v; want copy_1 released once", sealErr, err, target.released)
		}
		wantDropped := "[]"
		if sealErr != nil {
			wantDropped = "[copy_1]"
		}
		if got := fmt.Sprint(target.dropped); got != wantDropped {
			t.Errorf("seal error %v: dropped %s, want %s", sealErr, got, wantDropped)
		}
	}
}

// A point-in-time build of a time after now is refused before it claims or
// creates anything: the copy would hold the log up to now, labelled as the
// state at that time.
func TestAsOfRefusesATimeAfterNow(t *testing.T) {
	t.Parallel()
	target := newMemTarget()
	rb, err := NewRebuilder(RebuildConfig{LiveSchema: "live", Topics: []string{domain.TopicTransactions},
		Names: map[string]string{domain.TopicTransactions: "transactions"}}, target, memRuns{}, &fakeLog{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rb.StartAsOf(context.Background(), time.Now().Add(time.Minute), "copy_1", true)
	if !errors.Is(err, ErrAsOfInFuture) || len(target.created) != 0 || len(target.dropped) != 0 {
		t.Fatalf("as-of a minute ahead: %v, created %v, dropped %v; want ErrAsOfInFuture and nothing touched", err, target.created, target.dropped)
	}
}

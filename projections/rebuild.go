package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// RebuildKind says what a rebuild run builds.
type RebuildKind string

// Kinds of rebuild runs, a wire contract of the status API.
const (
	// KindRebuild builds every read model from the log and swaps it in.
	KindRebuild RebuildKind = "rebuild"
	// KindAsOf builds the read models as they were at a time into a
	// schema of their own, never swapped in.
	KindAsOf RebuildKind = "as-of"
)

// RebuildState is where a rebuild run is, a wire contract of the status
// API.
type RebuildState string

// States of a rebuild run.
const (
	StateBuilding RebuildState = "building"
	// StateSealing: the bulk is loaded; indexes are being built.
	StateSealing    RebuildState = "sealing"
	StateCatchingUp RebuildState = "catching-up"
	// StatePaused: the live projectors wait while the last records are
	// applied and the schemas are swapped.
	StatePaused    RebuildState = "paused"
	StateDone      RebuildState = "done"
	StateFailed    RebuildState = "failed"
	StateCancelled RebuildState = "cancelled"
)

// Active reports whether a run in state s is still working.
func (s RebuildState) Active() bool {
	return s == StateBuilding || s == StateSealing || s == StateCatchingUp || s == StatePaused
}

// Progress is how far a run is.
type Progress struct {
	// Applied counts the records applied so far, over every phase.
	Applied int64 `json:"applied"`
	// Left is the offsets still to apply in the current phase.
	Left int64 `json:"offsetsLeft"`
	// Rate is records applied per second over the run.
	Rate float64 `json:"eventsPerSecond"`
	// ETA is the time the current phase still needs at Rate.
	ETA     time.Duration `json:"etaNs"`
	Elapsed time.Duration `json:"elapsedNs"`
}

// RebuildRun is one rebuild or as-of build, as recorded.
type RebuildRun struct {
	ID     int64        `json:"id"`
	Kind   RebuildKind  `json:"kind"`
	Schema string       `json:"schema"`
	AsOf   *time.Time   `json:"asOf,omitempty"`
	State  RebuildState `json:"state"`
	// End is how many offsets the first pass had to apply.
	End        int64      `json:"offsetsAtStart"`
	Progress   Progress   `json:"progress"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Error      string     `json:"error,omitempty"`
	// Paused is how long the live projectors waited for the swap.
	Paused time.Duration `json:"pausedNs,omitempty"`
}

// ErrRebuildRunning is returned when another rebuild holds the lock.
var ErrRebuildRunning = errors.New("a rebuild is already running")

// ErrTargetBusy is returned when a point-in-time build into a schema is
// asked for while another one into it is running.
var ErrTargetBusy = errors.New("a point-in-time build into this schema is running")

// ErrAsOfInFuture is returned for a point-in-time build of a time that
// has not come yet: the copy would hold the records up to now, labelled as
// the state at that time.
var ErrAsOfInFuture = errors.New("as-of time is in the future")

// RebuildRuns records rebuild runs and tells live runs from dead ones.
//
// Begin of a KindRebuild run takes a lock that release gives back (a
// crashed process gives it back by dying), and returns ErrRebuildRunning
// while another process holds it; the full rebuilds a dead process left
// active are then returned as stale, marked failed. Begin of a KindAsOf
// run only records it: its schema must be claimed first.
//
// Claim takes schema for one point-in-time build until release is called
// (a crashed process gives it back by dying), and returns an error
// wrapping ErrTargetBusy while another run, in any process, holds it.
//
// Both Claim and Begin of a KindRebuild run mark failed the point-in-time
// builds whose claim is no longer held (their process died) and drop the
// schemas they left half-built, each under its claim, so that a new build
// into it waits for the drop; a schema another run built into after the
// dead one is left alone.
type RebuildRuns interface {
	Begin(ctx context.Context, run RebuildRun) (id int64, stale []RebuildRun, release func(), err error)
	Update(ctx context.Context, run RebuildRun) error
	Claim(ctx context.Context, schema string) (release func(), err error)
}

// RebuildTarget is where rebuilds write: fresh schemas next to the live
// one, and the swap.
type RebuildTarget interface {
	// Create makes schema, migrated and empty, and returns a store writing
	// into it (durability may be relaxed: it is not live until the swap).
	// The store is valid until Release or until the swap committed. A schema
	// that exists already is an error wrapping ErrTargetExists; one Create
	// made but could not finish (migrate, or the context ended) it drops
	// again, so that it does not refuse the next try.
	Create(ctx context.Context, schema string) (Store, error)
	// Seal makes schema fit to serve once its bulk is loaded (indexes,
	// durability) before it is swapped in or handed to analysts.
	Seal(ctx context.Context, schema string) error
	// Checkpoints returns the next offsets stored in schema under name.
	Checkpoints(ctx context.Context, schema, name string) (map[Partition]int64, error)
	// Pause makes the live projectors wait (their next transaction blocks)
	// until the returned swap commits or aborts.
	Pause(ctx context.Context) (Swap, error)
	// Drop removes schema and everything in it; a missing one is fine. It
	// leaves alone any store Create returned: that is its run's to release.
	Drop(ctx context.Context, schema string) error
	// Release closes what Create opened to return store, and nothing else;
	// the schema stays (a point-in-time build is done with its store).
	// Releasing a store twice, or after the swap closed it, is fine.
	Release(store Store)
}

// Swap is the paused moment of a rebuild.
type Swap interface {
	// Commit moves the read models of schema into the live schema in one
	// transaction, hands the checkpoints of projections in schema to the
	// live projectors, and resumes them. The replaced tables end up in
	// retired, for the caller to drop.
	Commit(ctx context.Context, schema, retired string, projections []string) error
	// Abort resumes the live projectors with nothing changed.
	Abort(ctx context.Context) error
}

// RebuildConfig tunes a Rebuilder. Zero values take the defaults noted.
type RebuildConfig struct {
	// LiveSchema names the schema the live read models are in; rebuild
	// schemas are named after it. Required.
	LiveSchema string
	// Topics are the event topics (default domain.EventTopics).
	Topics []string
	// Names maps each topic to its projection name (the live checkpoint
	// namespace). Required for every topic.
	Names map[string]string
	// BatchSize is how many records one transaction applies (default
	// DefaultRebuildBatch).
	BatchSize int
	// Workers is how many transactions run at once (default
	// DefaultRebuildWorkers).
	Workers int
	// PauseBelow is how few offsets may be left before the live
	// projectors are paused for the last pass (default 20000).
	PauseBelow int64
	// OnProgress, when set, is called with the run every ProgressEvery
	// (default 1 s) and when it ends.
	OnProgress    func(RebuildRun)
	ProgressEvery time.Duration
}

// Rebuild defaults, measured with make bench-replay on 2 cores: with four
// transactions in flight the database always has one to work on while the
// others are read, planned or encoded (2 workers: 7,500 events/s; 4: 8,500;
// 6: 8,300), and 2,000 records keep each one short (4,000: 8,500; 2,000:
// 9,300; 1,000: 9,000).
const (
	DefaultRebuildBatch   = 2000
	DefaultRebuildWorkers = 4
)

func (c *RebuildConfig) setDefaults() {
	if c.Topics == nil {
		c.Topics = domain.EventTopics
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultRebuildBatch
	}
	if c.Workers == 0 {
		c.Workers = DefaultRebuildWorkers
	}
	if c.PauseBelow == 0 {
		c.PauseBelow = 20000
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
}

// Validate reports every problem with c.
func (c RebuildConfig) Validate() error {
	var errs []error
	if c.LiveSchema == "" {
		errs = append(errs, errors.New("live schema is required"))
	}
	for _, t := range c.Topics {
		if c.Names[t] == "" {
			errs = append(errs, fmt.Errorf("topic %s has no projection name", t))
		}
	}
	if c.BatchSize < 1 || c.Workers < 1 {
		errs = append(errs, errors.New("batch size and workers must be positive"))
	}
	return errors.Join(errs...)
}

// Rebuilder builds read models from the log into fresh schemas: a full
// rebuild swapped in without downtime, or a point-in-time copy. It applies
// records with the live projectors' own rules (Projector.Apply), many per
// transaction.
type Rebuilder struct {
	cfg    RebuildConfig
	target RebuildTarget
	runs   RebuildRuns
	log    LogScanner
	status sync.Map // int64 → RebuildRun, the runs of this process
}

// NewRebuilder returns a Rebuilder; every collaborator is required.
func NewRebuilder(cfg RebuildConfig, target RebuildTarget, runs RebuildRuns, log LogScanner) (*Rebuilder, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new rebuilder: %w", err)
	}
	if target == nil || runs == nil || log == nil {
		panic("projections: NewRebuilder needs a target, a run store and a log scanner")
	}
	return &Rebuilder{cfg: cfg, target: target, runs: runs, log: log}, nil
}

// Projections are the projection names a rebuild replaces.
func (b *Rebuilder) Projections() []string {
	out := make([]string, 0, len(b.cfg.Topics))
	for _, t := range b.cfg.Topics {
		out = append(out, b.cfg.Names[t])
	}
	return out
}

// Rebuild builds every read model from the start of the log into a new
// schema up to the end offsets listed at start, catches up with the head,
// pauses the live projectors, applies the last records, swaps the schemas
// in one transaction handing the rebuilt checkpoints over, and resumes the
// live projectors. Until the swap commits nothing live changes: a
// cancelled or failed rebuild (or a crashed process) leaves the live read
// models as they were, and a new Rebuild starts over. It is StartRebuild
// and then Execute.
func (b *Rebuilder) Rebuild(ctx context.Context) (RebuildRun, error) {
	s, err := b.StartRebuild(ctx)
	if err != nil {
		return RebuildRun{Kind: KindRebuild}, err
	}
	return s.Execute(ctx)
}

// StartRebuild admits a rebuild: it takes the rebuild lock, or returns an
// error wrapping ErrRebuildRunning while another process or request holds
// it, and records the run. Execute then runs it.
func (b *Rebuilder) StartRebuild(ctx context.Context) (*StartedRebuild, error) {
	run := RebuildRun{Kind: KindRebuild, State: StateBuilding, StartedAt: time.Now().UTC()}
	id, stale, release, err := b.runs.Begin(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	run.ID = id
	run.Schema = b.rebuildSchema(id)
	// Recorded before anything creates it, so that a run dying at once
	// names what it leaves.
	if err := b.runs.Update(ctx, run); err != nil {
		release()
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	s := &StartedRebuild{b: b, run: run, release: release}
	s.build = func(ctx context.Context, run *RebuildRun, tr *tracker) error {
		for _, st := range stale {
			// A run can die after its swap committed, before it cleaned
			// up; one recorded before its name was can only have used
			// the name its id gives.
			schema := cmp.Or(st.Schema, b.rebuildSchema(st.ID))
			_ = b.target.Drop(ctx, schema+"_retired")
			_ = b.target.Drop(ctx, schema)
		}
		return b.rebuild(ctx, run, tr, &s.created)
	}
	return s, nil
}

// rebuildSchema is the schema the rebuild run id builds into.
func (b *Rebuilder) rebuildSchema(id int64) string {
	return fmt.Sprintf("%s_rebuild_%d", b.cfg.LiveSchema, id)
}

// AsOf builds the read models as they were at t (every record appended
// before t) into schema, which must not exist yet unless replace is set,
// and never touches the live read models. It is StartAsOf and then
// Execute.
func (b *Rebuilder) AsOf(ctx context.Context, t time.Time, schema string, replace bool) (RebuildRun, error) {
	s, err := b.StartAsOf(ctx, t, schema, replace)
	if err != nil {
		return RebuildRun{Kind: KindAsOf, Schema: schema}, err
	}
	return s.Execute(ctx)
}

// StartAsOf admits a point-in-time build into schema: it refuses a time
// after now (an error wrapping ErrAsOfInFuture), a schema no build may
// write into (ErrInvalidTarget, see validTarget), one another
// point-in-time build is running into (ErrTargetBusy: replace never drops
// a running build's schema) and, unless replace is set, one that exists
// (the target's Create wraps ErrTargetExists). It then claims the schema
// for the run's life, creates it, dropping it first with replace, and
// records the run. Execute then builds it.
func (b *Rebuilder) StartAsOf(ctx context.Context, t time.Time, schema string, replace bool) (*StartedRebuild, error) {
	if now := time.Now(); t.After(now) {
		return nil, fmt.Errorf("as-of: %s is after now (%s): %w", t.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339), ErrAsOfInFuture)
	}
	if err := b.validTarget(schema); err != nil {
		return nil, fmt.Errorf("as-of: %w", err)
	}
	unclaim, err := b.runs.Claim(ctx, schema)
	if err != nil {
		return nil, fmt.Errorf("as-of: %w", err)
	}
	if replace {
		if err := b.target.Drop(ctx, schema); err != nil {
			unclaim()
			return nil, fmt.Errorf("as-of: %w", err)
		}
	}
	store, err := b.target.Create(ctx, schema)
	if err != nil {
		unclaim()
		return nil, fmt.Errorf("as-of: %w", err)
	}
	at := t.UTC()
	run := RebuildRun{Kind: KindAsOf, Schema: schema, AsOf: &at, State: StateBuilding, StartedAt: time.Now().UTC()}
	id, _, release, err := b.runs.Begin(ctx, run)
	if err != nil {
		b.target.Release(store)
		_ = b.target.Drop(context.WithoutCancel(ctx), schema)
		unclaim()
		return nil, fmt.Errorf("as-of: %w", err)
	}
	run.ID = id
	// A build that fails or is cancelled drops its schema (finish): a
	// half-built, unindexed copy is no state analysts should query, and its
	// name is free for the next try. The claim is held until then, so what
	// finish drops is this run's schema.
	return &StartedRebuild{b: b, run: run, created: true,
		release: func() {
			release()
			unclaim()
		},
		build: func(ctx context.Context, run *RebuildRun, tr *tracker) error {
			defer b.target.Release(store)
			bounds, err := b.log.Bounds(ctx, b.cfg.Topics, time.Time{}, at)
			if err != nil {
				return err
			}
			tr.set(func(r *RebuildRun) { r.End = bounds.Records() })
			if err := b.build(ctx, store, NewKeySet(keysFor(bounds)), bounds, tr); err != nil {
				return err
			}
			tr.set(func(r *RebuildRun) { r.State = StateSealing })
			return b.target.Seal(ctx, schema)
		}}, nil
}

// ErrInvalidTarget marks a schema a build may not write into.
var ErrInvalidTarget = errors.New("invalid target schema")

// ErrTargetExists marks a schema a point-in-time build would create that
// exists already.
var ErrTargetExists = errors.New("target schema exists")

// maxSchemaName is the longest identifier Postgres keeps whole (longer
// ones are cut to it).
const maxSchemaName = 63

// validTarget returns an error wrapping ErrInvalidTarget when schema is
// not a name a point-in-time build may write into: the live schema, a
// rebuild's own (live_rebuild_N), a system schema (pg_…,
// information_schema), or anything but a lower-case identifier of at most
// 63 bytes — letters, digits and underscores, not starting with a digit —
// which is also what an analyst can put in search_path unquoted.
func (b *Rebuilder) validTarget(schema string) error {
	var why string
	switch {
	case schema == "":
		why = "is required"
	case schema == b.cfg.LiveSchema:
		why = "is the live schema"
	case len(schema) > maxSchemaName || !lowerIdentifier(schema):
		why = fmt.Sprintf("must be at most %d lower-case letters, digits and underscores, not starting with a digit", maxSchemaName)
	case strings.HasPrefix(schema, "pg_") || schema == "information_schema":
		why = "is a system schema"
	case strings.HasPrefix(schema, b.cfg.LiveSchema+"_rebuild_"):
		why = "is a name rebuilds give their own schemas"
	default:
		return nil
	}
	return fmt.Errorf("schema %q %s: %w", schema, why, ErrInvalidTarget)
}

func lowerIdentifier(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// StartedRebuild is a rebuild or point-in-time build admitted and recorded
// but not yet run. It holds what its start took (a rebuild the rebuild
// lock) until Execute returns, so it must be executed, once; with a
// context already cancelled, Execute records it cancelled and gives
// everything back.
type StartedRebuild struct {
	b       *Rebuilder
	run     RebuildRun
	release func()
	build   func(ctx context.Context, run *RebuildRun, tr *tracker) error
	// created is set once the run has created its schema: only then is
	// the schema its own to drop when it fails.
	created bool
}

// Run is the run as recorded at its start: its id, kind and schema.
func (s *StartedRebuild) Run() RebuildRun { return s.run }

// Execute runs the build and returns the run as it ended.
func (s *StartedRebuild) Execute(ctx context.Context) (RebuildRun, error) {
	defer s.release()
	tr := s.b.track(ctx, &s.run)
	defer tr.stop()
	err := s.build(ctx, &s.run, tr)
	return s.b.finish(ctx, &s.run, tr, s.created, err)
}

// rebuild runs a full rebuild; it sets created once it has created its
// schema.
func (b *Rebuilder) rebuild(ctx context.Context, run *RebuildRun, tr *tracker, created *bool) error {
	store, err := b.target.Create(ctx, run.Schema)
	if err != nil {
		return err
	}
	*created = true
	// The swap closes the store as it commits; on any other way out it is
	// released here, before finish drops the schema.
	defer b.target.Release(store)
	bounds, err := b.log.Bounds(ctx, b.cfg.Topics, time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	tr.set(func(r *RebuildRun) { r.End = bounds.Records() })
	// Every build below writes into the same fresh schema: one key set
	// remembers what they queried.
	keys := NewKeySet(keysFor(bounds))
	if err := b.build(ctx, store, keys, bounds, tr); err != nil {
		return err
	}
	tr.set(func(r *RebuildRun) { r.State = StateSealing })
	if err := b.target.Seal(ctx, run.Schema); err != nil {
		return err
	}
	// Catch up with the head while live keeps projecting, until what is
	// left is small enough to apply during a short pause.
	tr.set(func(r *RebuildRun) { r.State = StateCatchingUp })
	for range 10 {
		rest, err := b.rest(ctx, run.Schema)
		if err != nil {
			return err
		}
		if rest.Records() <= b.cfg.PauseBelow {
			break
		}
		if err := b.build(ctx, store, keys, rest, tr); err != nil {
			return err
		}
	}
	swap, err := b.target.Pause(ctx)
	if err != nil {
		return err
	}
	paused := time.Now()
	tr.set(func(r *RebuildRun) { r.State = StatePaused })
	err = func() error {
		rest, err := b.rest(ctx, run.Schema)
		if err != nil {
			return err
		}
		if err := b.build(ctx, store, keys, rest, tr); err != nil {
			return err
		}
		return swap.Commit(ctx, run.Schema, run.Schema+"_retired", b.Projections())
	}()
	if err != nil {
		_ = swap.Abort(context.WithoutCancel(ctx))
		return err
	}
	// The rebuilt tables are live and the live projectors resumed: the run
	// is done (and no longer shows as paused) while the replaced tables
	// and the empty copies of the rest are dropped.
	tr.set(func(r *RebuildRun) { r.Paused, r.State = time.Since(paused), StateDone })
	dctx := context.WithoutCancel(ctx)
	_ = b.target.Drop(dctx, run.Schema+"_retired")
	_ = b.target.Drop(dctx, run.Schema)
	return nil
}

// rest is what the rebuilt schema still lacks of the log as it is now.
func (b *Rebuilder) rest(ctx context.Context, schema string) (Bounds, error) {
	head, err := b.log.Bounds(ctx, b.cfg.Topics, time.Time{}, time.Time{})
	if err != nil {
		return Bounds{}, err
	}
	next := map[Partition]int64{}
	for _, t := range b.cfg.Topics {
		cps, err := b.target.Checkpoints(ctx, schema, b.cfg.Names[t])
		if err != nil {
			return Bounds{}, err
		}
		for p, o := range cps {
			if p.Topic == t {
				next[p] = o
			}
		}
	}
	return head.From(next), nil
}

func (b *Rebuilder) finish(ctx context.Context, run *RebuildRun, tr *tracker, created bool, err error) (RebuildRun, error) {
	// No progress report may land after the final one: a run recorded
	// active once its claim or lock is given back reads as one that died.
	tr.stop()
	now := time.Now().UTC()
	tr.set(func(r *RebuildRun) {
		r.FinishedAt = &now
		switch {
		case err == nil:
			r.State = StateDone
		case errors.Is(err, context.Canceled) || ctx.Err() != nil:
			r.State, r.Error = StateCancelled, err.Error()
		default:
			r.State, r.Error = StateFailed, err.Error()
		}
	})
	if err != nil && created {
		// Neither a rebuild's schema nor a point-in-time copy is of use
		// half-built.
		_ = b.target.Drop(context.WithoutCancel(ctx), run.Schema)
	}
	final := tr.snapshot()
	*run = final
	if err != nil {
		return final, fmt.Errorf("%s %s: %w", final.Kind, final.Schema, err)
	}
	return final, nil
}

// Status returns this process's runs that are still active.
func (b *Rebuilder) Status() []RebuildRun {
	var out []RebuildRun
	b.status.Range(func(_, v any) bool {
		if r := v.(RebuildRun); r.State.Active() {
			out = append(out, r)
		}
		return true
	})
	return out
}

// workSafely is work with a panic turned into the build's failure: the
// build stops and leaves the live read models as they are, and the
// process, which may be serving, goes on.
func (b *Rebuilder) workSafely(ctx context.Context, q chan []ScannedRecord, p *Projector, refusals *refusalBudget, tr *tracker) (err error) {
	defer func() {
		if perr := Recovered(recover()); perr != nil {
			err = fmt.Errorf("rebuild worker: %w", perr)
		}
	}()
	return b.work(ctx, q, p, refusals, tr)
}

// keysFor is how many keys a build of bounds queries, about: one event and
// at most one entity per record, plus room for the catch-up.
func keysFor(bounds Bounds) int64 { return 2*bounds.Records() + 1<<16 }

// build applies every record in bounds to store, which was created empty
// and has seen no queries but those keys holds. Each integration's records
// go to one worker (owners), in the order the scan hands them over (append
// order, see work). Every row a build writes belongs to one
// integration and nothing else writes store, so no two transactions ever
// race on a row and the projector reads rows without locking them. When
// every record is applied, the checkpoints are set to bounds' end
// (reached).
func (b *Rebuilder) build(ctx context.Context, store Store, keys *KeySet, bounds Bounds, tr *tracker) error {
	tr.left.Store(bounds.Records())
	// One projector for every topic: the scan hands over an integration's
	// records of all topics in append order, and each entity kind's are
	// applied in that order (see work). It writes no checkpoints: they are
	// set once every record of bounds is applied, each topic's under its
	// own projection's name (reached).
	p := NewProjector("rebuild", store, nil).writingFresh(keys).withoutCheckpoints().owningRows()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queues := make([]chan []ScannedRecord, b.cfg.Workers)
	refusals := newRefusalBudget(maxRefused)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan []ScannedRecord, 2)
		wg.Add(1)
		go func(q chan []ScannedRecord) {
			defer wg.Done()
			if err := b.workSafely(ctx, q, p, refusals, tr); err != nil {
				cancel(err)
				// Drain, so the scanner never blocks on this queue.
				for range q {
				}
			}
		}(queues[i])
	}
	own := &owners{workers: len(queues), of: map[string]int{}}
	err := b.log.Scan(ctx, ScanRequest{Bounds: bounds, BatchSize: b.cfg.BatchSize}, func(recs []ScannedRecord) error {
		for w, part := range own.split(recs) {
			if len(part) == 0 {
				continue
			}
			select {
			case queues[w] <- part:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return nil
	})
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if err != nil {
		return err
	}
	return b.reached(ctx, store, bounds)
}

// owners assigns each integration the worker that applies all of its
// records: the one its first record's partition number maps to. An
// integration's records share a partition number across topics, so whole
// batches go to one worker; records of an integration seen under another
// partition number (topics with different partition counts) follow it to
// its owner rather than to a second worker.
type owners struct {
	workers int
	of      map[string]int
}

// split returns recs (in append order; usually one partition number's) by
// worker, each part in recs' order. Records that are not envelopes
// (applied as nothing) go with their partition number.
func (o *owners) split(recs []ScannedRecord) [][]ScannedRecord {
	parts := make([][]ScannedRecord, o.workers)
	owner := func(s ScannedRecord) int {
		home := int(s.Partition.Partition) % o.workers
		if s.Err != nil {
			return home
		}
		w, ok := o.of[s.Envelope.IntegrationID]
		if !ok {
			w = home
			o.of[s.Envelope.IntegrationID] = w
		}
		return w
	}
	first := owner(recs[0])
	whole := true
	for _, s := range recs[1:] {
		if owner(s) != first {
			whole = false
			break
		}
	}
	if whole {
		parts[first] = recs
		return parts
	}
	for _, s := range recs {
		w := owner(s)
		parts[w] = append(parts[w], s)
	}
	return parts
}

// reached records, in store's checkpoints, that every record of bounds is
// applied.
func (b *Rebuilder) reached(ctx context.Context, store Store, bounds Bounds) error {
	var parts []Partition
	for p, end := range bounds.End {
		if end > bounds.Start[p] {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return retryTransient(ctx, func() error {
		return store.InTx(ctx, func(ctx context.Context, tx Tx) error {
			snap, err := tx.Load(ctx, Query{Names: b.cfg.Names, Partitions: parts})
			if err != nil {
				return err
			}
			var w Writes
			for _, p := range parts {
				prev, ok := snap.Checkpoints[p]
				if !ok {
					prev = -1
				}
				w.Checkpoints = append(w.Checkpoints, Checkpoint{Projection: b.cfg.Names[p.Topic], Partition: p, Prev: prev, Next: bounds.End[p]})
			}
			return tx.Save(ctx, w)
		})
	})
}

// work applies the batches of one worker, each entity kind's records in
// transactions of their own (an entity's events all have its kind; the
// records that change no entity are a lane of their own), in the order the
// scan handed them over: append order. A lane is applied once it holds
// BatchSize records, so per-transaction costs are paid once per BatchSize
// records, as when each topic was applied on its own; what is left is
// applied when the scan ends.
func (b *Rebuilder) work(ctx context.Context, q chan []ScannedRecord, p *Projector, refusals *refusalBudget, tr *tracker) error {
	lanes := map[domain.Kind][]Record{}
	flush := func(lane domain.Kind) error {
		recs := lanes[lane]
		if len(recs) == 0 {
			return nil
		}
		delete(lanes, lane)
		if err := applyAll(ctx, p, recs, refusals); err != nil {
			return err
		}
		tr.applied(int64(len(recs)))
		return nil
	}
	for recs := range q {
		for _, s := range recs {
			if _, ok := b.cfg.Names[s.Topic]; !ok {
				return fmt.Errorf("rebuild: record of topic %s, which has no projection", s.Topic)
			}
			if s.Err != nil {
				// Not an envelope: nothing can ever project it; the live
				// path leaves it on the log too.
				tr.applied(1)
				continue
			}
			lane, _ := domain.KindOf(s.Envelope.Type)
			lanes[lane] = append(lanes[lane], s.Record)
			if len(lanes[lane]) >= b.cfg.BatchSize {
				if err := flush(lane); err != nil {
					return err
				}
			}
		}
	}
	for _, lane := range slices.Sorted(maps.Keys(lanes)) {
		if err := flush(lane); err != nil {
			return err
		}
	}
	return nil
}

// applyAll applies recs in one transaction. A record that can never be
// projected is marked FAILED, as the poison queue would mark it, and the
// rest applied around it: one whose payload is unprojectable is found by
// reading the payloads; for any other error that is not transient (a value
// the database refuses), the batch is split in halves until the record
// that fails alone is found. A transient error, or a failure to mark the
// record, fails the rebuild.
func applyAll(ctx context.Context, p *Projector, recs []Record, refusals *refusalBudget) error {
	for len(recs) > 0 {
		err := retryTransient(ctx, func() error {
			_, err := p.Apply(ctx, recs...)
			return err
		})
		if err == nil {
			return nil
		}
		if !OwnFailure(ctx, err) {
			return err
		}
		if !IsPermanent(err) {
			return splitRefused(ctx, p, recs, err, refusals)
		}
		i := firstUnprojectable(recs)
		if i < 0 {
			return splitRefused(ctx, p, recs, err, refusals)
		}
		if i > 0 {
			if err := applyAll(ctx, p, recs[:i], refusals); err != nil {
				return err
			}
		}
		bad := recs[i]
		_, _, cerr := domain.ChangeOf(bad.Envelope)
		if err := failRecord(ctx, p, bad, cerr); err != nil {
			return err
		}
		recs = recs[i+1:]
	}
	return nil
}

// splitRefused applies recs, which failed together with err, in halves,
// the first before the second so that each partition's records stay in
// offset order; a record that fails alone is marked FAILED with err.
func splitRefused(ctx context.Context, p *Projector, recs []Record, err error, refusals *refusalBudget) error {
	if len(recs) == 1 {
		if refusals.left.Add(-1) < 0 {
			return fmt.Errorf("rebuild: more than %d records refused by the database, which points at the database rather than at the records; the last: %w", refusals.max, err)
		}
		return failRecord(ctx, p, recs[0], err)
	}
	half := len(recs) / 2
	if err := applyAll(ctx, p, recs[:half], refusals); err != nil {
		return err
	}
	return applyAll(ctx, p, recs[half:], refusals)
}

// refusalBudget bounds how many records one build marks FAILED for errors
// of the database: a few are bad records, many mean the database itself
// is wrong (a constraint or grant changed), and marking the whole log
// FAILED and swapping that in would be worse than failing the rebuild.
type refusalBudget struct {
	max  int64
	left atomic.Int64
}

func newRefusalBudget(n int64) *refusalBudget {
	b := &refusalBudget{max: n}
	b.left.Store(n)
	return b
}

// maxRefused is the refusalBudget of one build.
const maxRefused = 100

// failRecord marks rec FAILED with reason, as the poison queue would.
func failRecord(ctx context.Context, p *Projector, rec Record, reason error) error {
	return retryTransient(ctx, func() error {
		return p.Fail(ctx, Failure{Record: rec, Origin: rec.Partition, OriginOffset: rec.Offset, Reason: reason.Error(), Attempts: 1})
	})
}

func firstUnprojectable(recs []Record) int {
	for i, r := range recs {
		if _, _, err := domain.ChangeOf(r.Envelope); err != nil {
			return i
		}
	}
	return -1
}

// tracker keeps a run's progress and reports it.
type tracker struct {
	b       *Rebuilder
	mu      sync.Mutex
	run     RebuildRun
	started time.Time
	count   atomic.Int64
	left    atomic.Int64
	done    chan struct{}
	exited  chan struct{}
	once    sync.Once
	ctx     context.Context
}

func (b *Rebuilder) track(ctx context.Context, run *RebuildRun) *tracker {
	tr := &tracker{b: b, run: *run, started: time.Now(), done: make(chan struct{}), exited: make(chan struct{}), ctx: context.WithoutCancel(ctx)}
	b.status.Store(run.ID, tr.run)
	go func() {
		defer close(tr.exited)
		t := time.NewTicker(b.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-tr.done:
				return
			case <-t.C:
				tr.report()
			}
		}
	}()
	return tr
}

func (tr *tracker) applied(n int64) {
	tr.count.Add(n)
	tr.left.Add(-n)
}

func (tr *tracker) set(fn func(*RebuildRun)) {
	tr.mu.Lock()
	fn(&tr.run)
	tr.mu.Unlock()
	tr.report()
}

func (tr *tracker) snapshot() RebuildRun {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r := tr.run
	r.Progress.Applied = tr.count.Load()
	r.Progress.Left = max(tr.left.Load(), 0)
	r.Progress.Elapsed = time.Since(tr.started)
	if secs := r.Progress.Elapsed.Seconds(); secs > 0 {
		r.Progress.Rate = float64(r.Progress.Applied) / secs
	}
	if r.Progress.Rate > 0 {
		r.Progress.ETA = time.Duration(float64(r.Progress.Left) / r.Progress.Rate * float64(time.Second))
	}
	if !r.State.Active() {
		r.Progress.ETA = 0
	}
	return r
}

func (tr *tracker) report() {
	r := tr.snapshot()
	tr.b.status.Store(r.ID, r)
	_ = tr.b.runs.Update(tr.ctx, r)
	if tr.b.cfg.OnProgress != nil {
		tr.b.cfg.OnProgress(r)
	}
}

// stop ends the periodic reports and returns once none is under way.
func (tr *tracker) stop() {
	tr.once.Do(func() {
		close(tr.done)
		<-tr.exited
	})
}

// Package schedule runs scheduled syncs: one cron entry per integration
// from its syncFrequency, starts staggered across integrations, catch-up at
// start, and schedules that follow integration changes without a restart.
// Runs themselves are ingest.Syncer's: its lock keeps two schedulers (or a
// scheduler and a manual run) from syncing one integration at once, and a
// run carries when it fell due, so that a cron slot every scheduler fires
// runs once.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// CronSpec converts a sync frequency in minutes to a cron schedule as the
// original system did (5 → "*/5 * * * *", 60 → "0 * * * *", 120 →
// "0 */2 * * *"), never more often than minInterval. Any other frequency,
// neither a divisor of an hour nor a whole number of hours dividing a day
// (45, 90), runs every so many minutes ("@every 45m") counted from the
// integration's last scheduled sync (see ScheduleOf).
func CronSpec(frequency, minInterval int) string {
	f := max(frequency, minInterval, 1)
	switch {
	case f < 60 && 60%f == 0:
		return fmt.Sprintf("*/%d * * * *", f)
	case f == 60:
		return "0 * * * *"
	case f == 24*60:
		return "0 0 * * *"
	case f%60 == 0 && 24%(f/60) == 0:
		return fmt.Sprintf("0 */%d * * *", f/60)
	default:
		return fmt.Sprintf("@every %dm", f)
	}
}

// ScheduleOf is when in's scheduled syncs fall: its CronSpec, or for an
// "@every" spec the interval counted from in's last scheduled sync (its
// creation when it has none), so that every scheduler, started whenever,
// and the status fall on the same times.
func ScheduleOf(in domain.Integration, minInterval int) (spec string, sched cron.Schedule, err error) {
	spec = CronSpec(in.SyncFrequency, minInterval)
	sched, err = cron.ParseStandard(spec)
	if err != nil {
		return spec, nil, err
	}
	if _, constant := sched.(cron.ConstantDelaySchedule); constant {
		sched = anchoredEvery{every: Interval(in.SyncFrequency, minInterval), from: anchorOf(in)}
	}
	return spec, sched, nil
}

// anchorOf is what in's "@every" schedule counts from.
func anchorOf(in domain.Integration) time.Time {
	if in.LastScheduledSyncAt != nil {
		return in.LastScheduledSyncAt.UTC()
	}
	return in.CreatedAt.UTC()
}

// anchoredEvery falls every so often counted from a fixed time: from +
// every, from + 2 × every, … robfig/cron's "@every" counts from when the
// entry was added instead, so a scheduler started (or an entry re-added)
// after a slot waited up to a whole interval more.
type anchoredEvery struct {
	every time.Duration
	from  time.Time
}

// Next is the first time after t (at least from + every); without an
// anchor, t + every.
func (a anchoredEvery) Next(t time.Time) time.Time {
	if a.from.IsZero() {
		return t.Add(a.every)
	}
	k := int64(1)
	if t.After(a.from) {
		k = int64(t.Sub(a.from)/a.every) + 1
	}
	return a.from.Add(time.Duration(k) * a.every)
}

// Interval is the effective time between scheduled syncs.
func Interval(frequency, minInterval int) time.Duration {
	return time.Duration(max(frequency, minInterval, 1)) * time.Minute
}

// Scheduled reports whether an integration gets scheduled syncs.
func Scheduled(in domain.Integration) bool {
	return in.Active && in.SyncEnabled && len(in.SyncTypes) > 0
}

// Starter starts sync runs (ingest.Syncer).
type Starter interface {
	Start(ctx context.Context, req ingest.SyncRequest) (*ingest.StartedSync, error)
}

// Integrations lists integrations and reads one.
type Integrations interface {
	List(ctx context.Context) ([]domain.Integration, error)
	Integration(ctx context.Context, id string) (domain.Integration, error)
}

// Changes delivers the id of every changed integration, "" meaning "any may
// have changed" (postgres.IntegrationStore.Listen). Listen blocks until ctx
// ends.
type Changes interface {
	Listen(ctx context.Context, fn func(id string)) error
}

// Config tunes the scheduler.
type Config struct {
	// MinInterval is SYNC_MIN_INTERVAL in minutes; default 5.
	MinInterval int
	// Stagger is the least time between two run starts, across
	// integrations; default 10 s, NoStagger (any negative) for none. A
	// scheduler starts at most one run per Stagger: an integration's slot
	// that falls while its previous one still waits to start joins it.
	Stagger time.Duration
	// NoCatchUp turns off the start-up catch-up of overdue integrations.
	NoCatchUp bool
	// RetryEvery is how often a schedule reload or the catch-up that
	// failed (the database unreachable) is tried again, and how long after
	// a run that could not start (Redis or the database unreachable) it is
	// first tried again, doubling up to MaxStartRetry; default 5 s.
	RetryEvery time.Duration
	Now        func() time.Time
}

// NoStagger is a Config.Stagger that starts runs as they fall due.
const NoStagger time.Duration = -1

// Scheduler runs scheduled syncs. Build it with New and run it with Run.
type Scheduler struct {
	cfg     Config
	starter Starter
	store   Integrations
	changes Changes
	log     *slog.Logger

	cron  *cron.Cron
	queue chan job

	// reloading serializes reloads, so that one reading the store later
	// also applies later.
	reloading sync.Mutex

	mu      sync.Mutex
	entries map[string]entry
	queued  map[string]bool
	// stale holds the ids whose reload failed ("" for all of them), to
	// try again; catchUpDue, a catch-up that failed.
	stale      map[string]bool
	catchUpDue bool
	// deferred holds, per integration, the scheduled run put off until
	// the SoftPro API quota is back, and the timer that queues it.
	deferred map[string]*deferral
	loaded   chan struct{}
	started  chan struct{}
	once     sync.Once
}

type deferral struct {
	timer *time.Timer
	job   job
}

type entry struct {
	id   cron.EntryID
	spec string
	// anchor is what an "@every" schedule counts from; zero for others.
	anchor time.Time
}

type job struct {
	id      string
	trigger ingest.Trigger
	due     time.Time
	// failed counts the tries that could not start the run.
	failed int
}

// MaxStartRetry caps the wait before a run that could not start is tried
// again.
const MaxStartRetry = 5 * time.Minute

// startRetry is the wait before the try after the failed-th that could
// not start a run: RetryEvery, doubling, at most MaxStartRetry.
func (s *Scheduler) startRetry(failed int) time.Duration {
	d := s.cfg.RetryEvery
	for i := 1; i < failed && d < MaxStartRetry; i++ {
		d *= 2
	}
	return min(d, MaxStartRetry)
}

// New returns a scheduler; every collaborator is required except log.
func New(cfg Config, starter Starter, store Integrations, changes Changes, log *slog.Logger) *Scheduler {
	if starter == nil || store == nil || changes == nil {
		panic("schedule.New: starter, store and changes are required")
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = 5
	}
	if cfg.Stagger == 0 {
		cfg.Stagger = 10 * time.Second
	}
	if cfg.RetryEvery == 0 {
		cfg.RetryEvery = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, starter: starter, store: store, changes: changes, log: log,
		cron:    cron.New(cron.WithLocation(time.UTC)),
		queue:   make(chan job, 4096),
		entries: map[string]entry{}, queued: map[string]bool{}, stale: map[string]bool{}, deferred: map[string]*deferral{},
		loaded: make(chan struct{}), started: make(chan struct{})}
}

// Run schedules every integration, catches up on overdue ones, follows
// changes and dispatches runs until ctx ends; then it waits for runs in
// flight, which stop at their next request and are recorded as failed.
func (s *Scheduler) Run(ctx context.Context) error {
	s.cron.Start()
	defer func() { <-s.cron.Stop().Done() }()
	defer s.dropDeferred()

	listenErr := make(chan error, 1)
	go func() {
		listenErr <- s.changes.Listen(ctx, func(id string) {
			s.reloadOrRetry(ctx, id)
			s.once.Do(func() { close(s.loaded) })
		})
	}()
	select {
	case <-s.loaded:
	case err := <-listenErr:
		if err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
		return nil
	case <-ctx.Done():
		return nil
	}
	if !s.cfg.NoCatchUp {
		s.catchUpOrRetry(ctx)
	}
	close(s.started)

	var wg sync.WaitGroup
	defer wg.Wait()
	retry := time.NewTicker(s.cfg.RetryEvery)
	defer retry.Stop()
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
			s.retryFailed(ctx)
		case j := <-s.queue:
			if wait := time.Until(next); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
			next = time.Now().Add(s.cfg.Stagger)
			s.mu.Lock()
			delete(s.queued, j.id)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.execute(ctx, j)
			}()
		}
	}
}

// Loaded is closed once every integration has been scheduled.
func (s *Scheduler) Loaded() <-chan struct{} { return s.loaded }

// Started is closed once the start-up catch-up has been tried as well: an
// integration created from then on gets no catch-up run of this start.
func (s *Scheduler) Started() <-chan struct{} { return s.started }

// Entries returns each scheduled integration's cron spec.
func (s *Scheduler) Entries() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.entries))
	for id, e := range s.entries {
		out[id] = e.spec
	}
	return out
}

// enqueue queues a run unless one for the integration is queued already.
func (s *Scheduler) enqueue(id string, t ingest.Trigger, due time.Time) {
	s.enqueueJob(job{id: id, trigger: t, due: due})
}

func (s *Scheduler) enqueueJob(j job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued[j.id] {
		// Starts are staggered: more integrations fall due than start
		// within an interval, and their schedules slip.
		s.log.Warn("sync slot joins the integration's previous one, still waiting to start", "integration", j.id,
			"trigger", j.trigger, "due", j.due, "queued", len(s.queue), "stagger", s.cfg.Stagger.String())
		return
	}
	select {
	case s.queue <- j:
		s.queued[j.id] = true
	default:
		s.log.Warn("sync queue full; run skipped", "integration", j.id)
	}
}

func (s *Scheduler) execute(ctx context.Context, j job) {
	st, err := s.starter.Start(ctx, ingest.SyncRequest{IntegrationID: j.id, Trigger: j.trigger, Due: j.due})
	var wait *ingest.QuotaWaitError
	switch {
	case errors.Is(err, ingest.ErrSyncInProgress):
		s.log.Info("sync skipped: another run holds the lock", "integration", j.id, "trigger", j.trigger)
		return
	case errors.Is(err, ingest.ErrSyncAlreadyRan):
		s.log.Info("sync skipped: another scheduler ran it", "integration", j.id, "trigger", j.trigger, "due", j.due)
		return
	case errors.Is(err, ingest.ErrSyncDisabled), errors.Is(err, domain.ErrNotFound):
		return
	case errors.Is(err, ingest.ErrNoConnection):
		// Sync is on by default; the integration is not connected yet.
		s.log.Info("sync skipped: no SoftPro connection", "integration", j.id, "trigger", j.trigger)
		return
	case errors.As(err, &wait):
		s.log.Info("sync deferred: the SoftPro API quota is empty", "integration", j.id, "trigger", j.trigger,
			"availableIn", wait.AvailableIn.Round(time.Second).String())
		s.deferRun(j, wait.AvailableIn)
		return
	case err != nil:
		var invalid *domain.ValidationError
		if errors.As(err, &invalid) || ctx.Err() != nil {
			s.log.Error("sync not started", "integration", j.id, "trigger", j.trigger, "err", err)
			return
		}
		// Redis or the database out of reach: the slot is not lost.
		j.failed++
		in := s.startRetry(j.failed)
		s.log.Warn("sync not started; trying again", "integration", j.id, "trigger", j.trigger,
			"in", in.String(), "tries", j.failed, "err", err)
		s.deferRun(j, in)
		return
	}
	run, err := st.Execute(ctx)
	if err != nil {
		s.log.Error("sync failed", "integration", j.id, "run", run.ID, "trigger", j.trigger, "err", err)
		return
	}
	s.log.Info("sync done", "integration", j.id, "run", run.ID, "trigger", j.trigger, "records", run.Total(),
		"requests", run.Requests, "rateLimited", run.RateLimited)
}

// deferRun queues j again in d, once the quota is back or after a try
// that could not start it. Slots that come meanwhile join it: one run, due
// at the latest of them.
func (s *Scheduler) deferRun(j job, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.deferred[j.id]; cur != nil {
		if j.due.After(cur.job.due) {
			j.failed = max(j.failed, cur.job.failed)
			cur.job = j
		}
		return
	}
	dj := &deferral{job: j}
	dj.timer = time.AfterFunc(d+100*time.Millisecond, func() {
		s.mu.Lock()
		if s.deferred[j.id] != dj {
			s.mu.Unlock()
			return
		}
		delete(s.deferred, j.id)
		next := dj.job
		s.mu.Unlock()
		s.enqueueJob(next)
	})
	s.deferred[j.id] = dj
}

// dropDeferred forgets the deferred runs when the scheduler stops.
func (s *Scheduler) dropDeferred() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, dj := range s.deferred {
		dj.timer.Stop()
		delete(s.deferred, id)
	}
}

// reload re-reads one integration ("" = all) and adjusts its cron entry.
// reloadOrRetry reloads id's schedule ("" for all), marking it to be tried
// again when that fails.
func (s *Scheduler) reloadOrRetry(ctx context.Context, id string) {
	err := s.reload(ctx, id)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("reload schedules; trying again", "integration", id, "in", s.cfg.RetryEvery, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil && id == "":
		clear(s.stale)
	case err == nil:
		delete(s.stale, id)
	default:
		s.stale[id] = true
	}
}

// catchUpOrRetry runs the catch-up, marking it to be tried again when it
// fails.
func (s *Scheduler) catchUpOrRetry(ctx context.Context) {
	err := s.catchUp(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("catch-up; trying again", "in", s.cfg.RetryEvery, "err", err)
	}
	s.mu.Lock()
	s.catchUpDue = err != nil
	s.mu.Unlock()
}

// retryFailed tries the failed reloads and catch-up again: all schedules at
// once when any reload of all failed.
func (s *Scheduler) retryFailed(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.stale))
	for id := range s.stale {
		ids = append(ids, id)
	}
	catchUp := s.catchUpDue
	s.mu.Unlock()
	if slices.Contains(ids, "") {
		ids = []string{""}
	}
	for _, id := range ids {
		s.reloadOrRetry(ctx, id)
	}
	if catchUp {
		s.catchUpOrRetry(ctx)
	}
}

func (s *Scheduler) reload(ctx context.Context, id string) error {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	if id == "" {
		all, err := s.store.List(ctx)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, in := range all {
			seen[in.ID] = true
			s.apply(in.ID, in, true)
		}
		s.mu.Lock()
		var gone []string
		for id := range s.entries {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
		s.mu.Unlock()
		for _, id := range gone {
			s.apply(id, domain.Integration{}, false)
		}
		return nil
	}
	in, err := s.store.Integration(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		s.apply(id, domain.Integration{}, false)
		return nil
	}
	if err != nil {
		return err
	}
	s.apply(id, in, true)
	return nil
}

// apply makes the cron entry of id match in (exists false: none).
func (s *Scheduler) apply(id string, in domain.Integration, exists bool) {
	var (
		want   string
		sched  cron.Schedule
		anchor time.Time
		err    error
	)
	if exists && Scheduled(in) {
		want, sched, err = ScheduleOf(in, s.cfg.MinInterval)
		if err != nil {
			s.log.Error("bad cron spec", "integration", id, "spec", want, "err", err)
			want = ""
		}
		if every, ok := sched.(anchoredEvery); ok {
			// A scheduled run that started moves the anchor: the entry
			// is added again, to fall an interval after it.
			anchor = every.from
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, has := s.entries[id]
	if has && cur.spec == want && cur.anchor.Equal(anchor) {
		return
	}
	if has {
		s.cron.Remove(cur.id)
		delete(s.entries, id)
	}
	if want == "" {
		return
	}
	// Every scheduler fires at the slot's minute (cron's resolution), so
	// that minute names the slot across processes: the first run started
	// for it makes the others' skip.
	eid := s.cron.Schedule(sched, cron.FuncJob(func() {
		s.enqueue(id, ingest.TriggerScheduled, s.cfg.Now().UTC().Truncate(time.Minute))
	}))
	s.entries[id] = entry{id: eid, spec: want, anchor: anchor}
}

// catchUp queues a run for every scheduled integration that missed a slot
// since its last scheduled sync (or never had one).
func (s *Scheduler) catchUp(ctx context.Context) error {
	// Taken before the list: a run another scheduler starts after the list
	// was read starts after now, and makes this one's skip.
	now := s.cfg.Now()
	all, err := s.store.List(ctx)
	if err != nil {
		return err
	}
	for _, in := range all {
		if !Scheduled(in) {
			continue
		}
		if missedSlot(in, s.cfg.MinInterval, now) {
			s.enqueue(in.ID, ingest.TriggerCatchUp, now)
		}
	}
	return nil
}

// missedSlot reports whether a scheduled sync of in fell due since its last
// scheduled sync: a cron slot between then and now, or, for "@every"
// schedules, an interval gone by. The last run may have started after its
// own slot (staggered), so less than an interval before the slot missed.
func missedSlot(in domain.Integration, minInterval int, now time.Time) bool {
	last := in.LastScheduledSyncAt
	if last == nil {
		return true
	}
	if _, sched, err := ScheduleOf(in, minInterval); err == nil {
		return !sched.Next(last.UTC()).After(now.UTC())
	}
	return now.Sub(*last) >= Interval(in.SyncFrequency, minInterval)
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/roisystems/softprohub/domain"
)

// SyncConfig tunes the sync job. Zero values take the defaults named.
type SyncConfig struct {
	// PageSize is the page size asked of the API; default 500.
	PageSize int
	// Overlap is subtracted from the watermark when asking for changes, so
	// records whose updated_at ties or trails the last page are not missed
	// (a late commit). Those that come again unchanged are passed over: the
	// watermark keeps the event ids appended within the overlap
	// (SyncMark.Recent). Default 1 minute.
	Overlap time.Duration
	// LockTTL is the sync lock's time to live, extended every third of it
	// while the run lasts; default 10 minutes.
	LockTTL time.Duration
	// DefaultRateLimit applies to integrations without a rateLimit; default
	// 100 requests per RateWindow (default 1 minute).
	DefaultRateLimit int
	RateWindow       time.Duration
	// PageAttempts bounds the tries of one page on 5xx and transport errors
	// (429s do not count); default 5, with RetryDelay (default 500 ms)
	// doubling between tries.
	PageAttempts int
	RetryDelay   time.Duration
	// MaxRateLimitWaits bounds the 429s accepted for one page; default 30.
	MaxRateLimitWaits int
	// MaxRateLimitWait bounds one wait for the rate limit, the shared
	// quota's or a 429's Retry-After; default 5 minutes. A run that would
	// have to wait longer fails at once instead of holding the sync lock
	// (a 429's Retry-After still drains the shared quota for as long as
	// SoftPro asked, so no run sends before then).
	MaxRateLimitWait time.Duration
	// AppendConcurrency is how many records of a page are appended at once;
	// default 64.
	AppendConcurrency int
	Now               func() time.Time
}

func (c *SyncConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.PageSize, 500)
	def(&c.DefaultRateLimit, 100)
	def(&c.PageAttempts, 5)
	def(&c.MaxRateLimitWaits, 30)
	def(&c.AppendConcurrency, 64)
	defDur(&c.Overlap, time.Minute)
	defDur(&c.LockTTL, 10*time.Minute)
	defDur(&c.RateWindow, time.Minute)
	defDur(&c.RetryDelay, 500*time.Millisecond)
	defDur(&c.MaxRateLimitWait, DefaultMaxRateLimitWait)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration.
func (c SyncConfig) Validate() error {
	var errs []error
	if c.PageSize < 1 || c.PageSize > 1000 {
		errs = append(errs, fmt.Errorf("page size %d must be 1..1000", c.PageSize))
	}
	if c.Overlap < 0 {
		errs = append(errs, errors.New("overlap must not be negative"))
	}
	if c.LockTTL < time.Second {
		errs = append(errs, fmt.Errorf("lock TTL %s must be at least 1s", c.LockTTL))
	}
	if c.DefaultRateLimit < 1 || c.RateWindow < time.Millisecond {
		errs = append(errs, errors.New("default rate limit and window must be positive"))
	}
	if c.PageAttempts < 1 || c.MaxRateLimitWaits < 1 || c.AppendConcurrency < 1 || c.RetryDelay < 0 || c.MaxRateLimitWait < 0 {
		errs = append(errs, errors.New("page attempts, rate-limit waits and append concurrency must be positive"))
	}
	return errors.Join(errs...)
}

// SyncDeps are the sync job's collaborators, all required.
type SyncDeps struct {
	Integrations SyncIntegrations
	Connections  ConnectionSource
	API          SoftProAPI
	Limiter      Limiter
	Locker       Locker
	Appender     Appender
	Runs         RunRecorder
	Watermarks   Watermarks
}

// Syncer runs sync jobs: it pages through an integration's SoftPro API
// since the last good point and appends every record it finds as a sync
// event. It is safe for concurrent use; the lock keeps one run per
// integration across every process.
type Syncer struct {
	cfg SyncConfig
	d   SyncDeps
}

// NewSyncer checks cfg and deps and returns a Syncer.
func NewSyncer(cfg SyncConfig, d SyncDeps) (*Syncer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sync config: %w", err)
	}
	if d.Integrations == nil || d.Connections == nil || d.API == nil || d.Limiter == nil ||
		d.Locker == nil || d.Appender == nil || d.Runs == nil || d.Watermarks == nil {
		panic("ingest.NewSyncer: every dependency is required")
	}
	return &Syncer{cfg: cfg, d: d}, nil
}

// SyncRequest asks for one run.
type SyncRequest struct {
	IntegrationID string
	// Types to pull; empty means the integration's syncTypes.
	Types   []string
	Trigger Trigger
	// Due is, for a scheduled or catch-up run, when the scheduler found it
	// due: the cron slot's minute, or the catch-up's check. Start skips
	// the run with ErrSyncAlreadyRan when a scheduled or catch-up run of
	// the integration started at or after Due (another scheduler's run for
	// the same slot). Zero skips nothing.
	Due time.Time
	// Full forgets the watermarks of the run's types, so it pulls every
	// record; else a non-zero Since moves back to Since each of them that
	// is later (a gap fill), leaving one never set as it is (that type is
	// pulled whole anyway). Either is done only once the run is admitted
	// and holds the lock: a refused run changes nothing.
	Full  bool
	Since time.Time
}

// StartedSync is a run that holds its integration's lock and is recorded as
// running. Execute it exactly once.
type StartedSync struct {
	s     *Syncer
	run   SyncRun
	in    domain.Integration
	conn  domain.SoftProConnection
	token string
}

// Run is the run as recorded when it started.
func (r *StartedSync) Run() SyncRun { return r.run }

// Sync starts and executes one run.
func (s *Syncer) Sync(ctx context.Context, req SyncRequest) (SyncRun, error) {
	st, err := s.Start(ctx, req)
	if err != nil {
		return SyncRun{}, err
	}
	return st.Execute(ctx)
}

// Start checks the integration, takes its sync lock and records the run.
// Errors: domain.ErrNotFound, ErrSyncDisabled (inactive; or sync disabled
// for a scheduled run), ErrNoConnection, *domain.ValidationError for unknown
// types, ErrSyncInProgress when another run holds the lock,
// ErrSyncAlreadyRan when a scheduled run is no longer due (req.Due).
func (s *Syncer) Start(ctx context.Context, req SyncRequest) (*StartedSync, error) {
	if req.Trigger == "" {
		req.Trigger = TriggerManual
	}
	in, err := s.d.Integrations.Integration(ctx, req.IntegrationID)
	if err != nil {
		return nil, err
	}
	if !syncAllowed(in, req.Trigger) {
		return nil, fmt.Errorf("sync %s: %w", in.ID, ErrSyncDisabled)
	}
	types, err := syncTypes(req.Types, in.SyncTypes)
	if err != nil {
		return nil, err
	}
	conn, err := s.d.Connections.Connection(ctx, in.ID)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, fmt.Errorf("sync %s: %w", in.ID, ErrNoConnection)
	} else if err != nil {
		return nil, fmt.Errorf("sync %s: connection: %w", in.ID, err)
	}
	if req.Trigger.Scheduled() {
		// A slot that comes while SoftPro's wait outlasts what a run
		// waits would record a failed run without a request: the
		// scheduler starts it again once the quota is back.
		q := QuotaOf(in, s.cfg.DefaultRateLimit, s.cfg.RateWindow)
		remaining, back, err := s.d.Limiter.RemainingQuota(ctx, in.ID, q)
		if err != nil {
			return nil, fmt.Errorf("sync %s: quota: %w", in.ID, err)
		}
		if remaining == 0 && back > s.cfg.MaxRateLimitWait {
			return nil, fmt.Errorf("sync %s: %w", in.ID, &QuotaWaitError{AvailableIn: back})
		}
	}
	key := SyncLockKey(in.ID)
	token, ok, err := s.d.Locker.TryLock(ctx, key, s.cfg.LockTTL)
	if err != nil {
		return nil, fmt.Errorf("sync %s: lock: %w", in.ID, err)
	}
	if !ok {
		return nil, fmt.Errorf("sync %s: %w", in.ID, ErrSyncInProgress)
	}
	fail := func(err error) (*StartedSync, error) {
		_ = s.d.Locker.Unlock(context.WithoutCancel(ctx), key, token) // expires anyway
		return nil, fmt.Errorf("sync %s: %w", in.ID, err)
	}
	if req.Trigger.Scheduled() && !req.Due.IsZero() {
		// Read again under the lock: a run that started since the read
		// above has set lastScheduledSyncAt by now, and none can start
		// while this one holds the lock.
		cur, err := s.d.Integrations.Integration(ctx, in.ID)
		if err != nil {
			return fail(err)
		}
		if last := cur.LastScheduledSyncAt; last != nil && !last.Before(req.Due) {
			return fail(fmt.Errorf("%w: one started at %s, due at %s", ErrSyncAlreadyRan,
				last.UTC().Format(time.RFC3339), req.Due.UTC().Format(time.RFC3339)))
		}
	}
	if err := s.rewind(ctx, in.ID, types, req); err != nil {
		return fail(err)
	}
	started := s.cfg.Now().UTC()
	run := SyncRun{IntegrationID: in.ID, Trigger: req.Trigger, Types: types, Status: RunRunning,
		StartedAt: started, Records: map[string]int{}, Holder: token}
	if run.ID, err = s.d.Runs.StartRun(ctx, run); err != nil {
		return fail(fmt.Errorf("record run: %w", err))
	}
	if _, err := s.d.Integrations.Update(ctx, in.ID, func(i *domain.Integration) error {
		i.SyncStatus = SyncStatusRunning
		if req.Trigger.Scheduled() {
			i.LastScheduledSyncAt = &started
		}
		return nil
	}); err != nil {
		// The run is recorded: end it, rather than leave it running until
		// the next run calls it abandoned.
		err = fmt.Errorf("mark running: %w", err)
		finished := s.cfg.Now().UTC()
		run.Status, run.Error, run.FinishedAt = RunFailed, err.Error(), &finished
		if ferr := s.d.Runs.FinishRun(context.WithoutCancel(ctx), run); ferr != nil {
			err = errors.Join(err, fmt.Errorf("record run: %w", ferr))
		}
		return fail(err)
	}
	return &StartedSync{s: s, run: run, in: in, conn: conn, token: token}, nil
}

// rewind moves the watermarks of types back as req asks (Full, Since).
func (s *Syncer) rewind(ctx context.Context, id string, types []string, req SyncRequest) error {
	if !req.Full && req.Since.IsZero() {
		return nil
	}
	for _, typ := range types {
		to := time.Time{}
		if !req.Full {
			mark, err := s.d.Watermarks.Watermark(ctx, id, typ)
			if err != nil {
				return fmt.Errorf("rewind: %w", err)
			}
			if mark.At.IsZero() || !mark.At.After(req.Since) {
				continue
			}
			to = req.Since
		}
		// A rewound type forgets the records it appended last: the run
		// appends again everything it pulls from there.
		if err := s.d.Watermarks.SetWatermark(ctx, id, typ, SyncMark{At: to}); err != nil {
			return fmt.Errorf("rewind: %w", err)
		}
	}
	return nil
}

func syncTypes(asked, configured []string) ([]string, error) {
	if len(asked) == 0 {
		asked = configured
	}
	var v domain.ValidationError
	if len(asked) == 0 {
		v.Add("no sync types: pass types, or give the integration syncTypes")
	}
	for _, t := range asked {
		if !slices.Contains(domain.SyncTypes, t) {
			v.Add("unknown sync type %q (want one of %v)", t, domain.SyncTypes)
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(asked))
	for _, t := range domain.SyncTypes {
		if slices.Contains(asked, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Execute pages through every type of the run, then records how it ended
// and releases the lock. Before each page it checks that the integration
// still wants syncing; one deactivated or deleted meanwhile ends the run
// failed with ErrSyncDisabled. The returned run is the recorded one; its error,
// if any, is also returned. Cancelling ctx stops the run between requests;
// it is recorded as failed and the next run resumes from the last page
// that was fully appended.
func (r *StartedSync) Execute(ctx context.Context) (SyncRun, error) {
	s, run := r.s, r.run
	key := SyncLockKey(run.IntegrationID)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopKeeping := r.keepLock(ctx, cancel)

	err := r.pull(ctx, &run)
	stopKeeping()
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrLockLost) {
		err = fmt.Errorf("%w: %w", ErrLockLost, err)
	}

	// Record the outcome even when ctx was cancelled (shutdown).
	done := context.WithoutCancel(ctx)
	finished := s.cfg.Now().UTC()
	run.FinishedAt = &finished
	run.Status = RunSucceeded
	if err != nil {
		run.Status = RunFailed
		run.Error = err.Error()
	}
	// A run that lost its lock writes the integration's sync status only
	// if nobody holds the lock now: a run that took it owns the status
	// (RUNNING), which this one must not overwrite. A run that ended well
	// may have lost it too, between two extensions (a pause longer than
	// the TTL, an evicted key).
	lockLost := errors.Is(err, ErrLockLost)
	if err == nil {
		held, lerr := s.d.Locker.Extend(done, key, r.token, s.cfg.LockTTL)
		lockLost = lerr == nil && !held
	}
	ownsStatus, probe := true, ""
	if lockLost {
		tok, ok, lerr := s.d.Locker.TryLock(done, key, s.cfg.LockTTL)
		switch {
		case lerr == nil && !ok:
			ownsStatus = false
		case ok:
			probe = tok // held while the status is written
		}
	}
	var errs []error
	if ferr := s.d.Runs.FinishRun(done, run); ferr != nil {
		errs = append(errs, fmt.Errorf("record run: %w", ferr))
	}
	setStatus := func(i *domain.Integration) error {
		if err != nil {
			i.SyncStatus = SyncStatusError
			msg := run.Error
			i.LastSyncError = &msg
			return nil
		}
		i.SyncStatus = SyncStatusIdle
		i.LastSyncError = nil
		i.LastSyncAt = &finished
		return nil
	}
	if ownsStatus {
		if _, uerr := s.d.Integrations.Update(done, run.IntegrationID, setStatus); uerr != nil {
			errs = append(errs, fmt.Errorf("update integration: %w", uerr))
		}
	}
	if probe != "" {
		if uerr := s.d.Locker.Unlock(done, key, probe); uerr != nil {
			errs = append(errs, fmt.Errorf("unlock: %w", uerr))
		}
	}
	if uerr := s.d.Locker.Unlock(done, key, r.token); uerr != nil {
		errs = append(errs, fmt.Errorf("unlock: %w", uerr))
	}
	if err != nil {
		errs = append([]error{err}, errs...)
	}
	if len(errs) > 0 {
		return run, fmt.Errorf("sync %s run %d: %w", run.IntegrationID, run.ID, errors.Join(errs...))
	}
	return run, nil
}

// keepLock extends the lock every third of its TTL until stopped. When the
// lock turns out to be someone else's, or cannot be extended for two
// thirds of the TTL, it cancels the run with ErrLockLost.
func (r *StartedSync) keepLock(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	s := r.s
	key := SyncLockKey(r.run.IntegrationID)
	every := s.cfg.LockTTL / 3
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok, err := s.d.Locker.Extend(ctx, key, r.token, s.cfg.LockTTL)
			switch {
			case err == nil && ok:
				lastOK = time.Now()
			case err == nil && !ok:
				cancel(ErrLockLost)
				return
			case time.Since(lastOK) >= 2*every:
				cancel(fmt.Errorf("%w: %w", ErrLockLost, err))
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// pull pages through every type of the run. Records too large for the log
// are passed over (the watermarks move past them) and named in the error
// the run ends with, once every type has been pulled or, when the run fails
// before, together with that failure: the next run starts past them.
func (r *StartedSync) pull(ctx context.Context, run *SyncRun) error {
	var skipped []string
	err := r.pullTypes(ctx, run, &skipped)
	n := len(skipped)
	if n == 0 {
		return err
	}
	const named = 20
	more := ""
	if n > named {
		skipped, more = skipped[:named], fmt.Sprintf(" and %d more", n-named)
	}
	tooLarge := fmt.Errorf("%w: %d records not appended: %s%s", ErrRecordTooLarge, n, strings.Join(skipped, ", "), more)
	if err != nil {
		return fmt.Errorf("%w; before that, %w", err, tooLarge)
	}
	return tooLarge
}

// pullTypes pages through every type of the run, adding the records too
// large for the log to skipped.
func (r *StartedSync) pullTypes(ctx context.Context, run *SyncRun, skipped *[]string) error {
	s := r.s
	var q Quota
	for _, typ := range run.Types {
		evType, _ := domain.SyncEventType(typ)
		mark, err := s.d.Watermarks.Watermark(ctx, run.IntegrationID, typ)
		if err != nil {
			return fmt.Errorf("%s: watermark: %w", typ, err)
		}
		req := PageRequest{Type: typ, Limit: s.cfg.PageSize}
		if !mark.At.IsZero() {
			req.ModifiedSince = mark.At.Add(-s.cfg.Overlap)
		}
		var cursors CursorProgress
		for {
			in, err := r.stillWanted(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", typ, err)
			}
			// A rateLimit changed during the run applies from its next page.
			q = QuotaOf(in, s.cfg.DefaultRateLimit, s.cfg.RateWindow)
			asked := s.cfg.Now()
			page, err := r.fetch(ctx, run, q, req)
			if err != nil {
				return fmt.Errorf("%s: %w", typ, err)
			}
			// Records appended already (the overlap brings them again)
			// are passed over.
			fresh := make([]Record, 0, len(page.Records))
			freshIDs := make([]string, 0, len(page.Records))
			for _, rec := range page.Records {
				id := domain.SyncEventID(evType, rec.ID, rec.UpdatedAt)
				if _, done := mark.Recent[id]; !done {
					fresh, freshIDs = append(fresh, rec), append(freshIDs, id)
				}
			}
			tooLarge, err := r.appendPage(ctx, run, evType, fresh, freshIDs)
			if err != nil {
				return fmt.Errorf("%s: %w", typ, err)
			}
			for _, id := range tooLarge {
				*skipped = append(*skipped, typ+" "+id)
			}
			appended := make(map[string]time.Time, len(fresh))
			for i, rec := range fresh {
				if _, large := slices.BinarySearch(tooLarge, rec.ID); !large {
					appended[freshIDs[i]] = rec.UpdatedAt.UTC()
				}
			}
			run.Records[typ] += len(appended)
			// A record stamped after the page was asked for comes from a
			// SoftPro clock running ahead: a watermark there would hide the
			// changes other clocks stamp meanwhile, so it goes no further
			// than this side's clock (those records come again and are
			// passed over).
			newest := newestOf(page.Records)
			if newest.After(asked) {
				newest = asked.UTC()
			}
			if newest.After(mark.At) || len(appended) > 0 {
				at := mark.At
				if newest.After(at) {
					at = newest
				}
				next := mark.advance(at, appended, s.cfg.Overlap)
				if err := s.d.Watermarks.SetWatermark(ctx, run.IntegrationID, typ, next); err != nil {
					// An integration deleted while the page was asked for
					// has no watermark to save: say so, as the next page's
					// check would.
					if _, werr := r.stillWanted(ctx); errors.Is(werr, ErrSyncDisabled) {
						return fmt.Errorf("%s: %w", typ, werr)
					}
					return fmt.Errorf("%s: save watermark: %w", typ, err)
				}
				mark = next
			}
			if page.NextCursor == "" {
				break
			}
			// Stop rather than page for ever under the lock.
			if err := cursors.Next(req.Cursor, page.NextCursor); err != nil {
				return fmt.Errorf("%s: %w", typ, err)
			}
			req.Cursor = page.NextCursor
		}
	}
	return nil
}

// stillWanted re-reads the integration before each page, so a run stops
// once its integration is deactivated or deleted (or, for a scheduled run,
// has sync turned off) rather than syncing it to the end, and follows its
// rate limit; it returns the integration as read.
func (r *StartedSync) stillWanted(ctx context.Context) (domain.Integration, error) {
	in, err := r.s.d.Integrations.Integration(ctx, r.run.IntegrationID)
	if errors.Is(err, domain.ErrNotFound) {
		return in, fmt.Errorf("%w: integration deleted", ErrSyncDisabled)
	}
	if err != nil {
		return in, fmt.Errorf("integration: %w", err)
	}
	if !syncAllowed(in, r.run.Trigger) {
		return in, fmt.Errorf("%w: switched off during the run", ErrSyncDisabled)
	}
	return in, nil
}

// syncAllowed reports whether a run of trigger may sync in: an inactive
// integration never syncs; one with sync off only when asked by hand.
func syncAllowed(in domain.Integration, trigger Trigger) bool {
	return in.Active && (in.SyncEnabled || !trigger.Scheduled())
}

// maxStalledPages is how many pages in a row may send back a cursor
// already asked for (empty pages that keep their cursor) before paging
// gives up on the API ever reaching its last page.
const maxStalledPages = 20

// CursorProgress tells an API paging towards its last page from one that
// only ever sends back cursors already asked for. The zero value is ready;
// use one per listing.
type CursorProgress struct {
	seen    map[string]bool
	stalled int
}

// Next records that the page asked for with cursor answered next (not
// empty) and returns an error wrapping ErrNoProgress once maxStalledPages
// pages in a row have sent back a cursor already asked for.
func (p *CursorProgress) Next(cursor, next string) error {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[cursor] = true
	if !p.seen[next] {
		p.stalled = 0
		return nil
	}
	if p.stalled++; p.stalled >= maxStalledPages {
		return fmt.Errorf("%w: %d pages in a row sent back a cursor already asked for", ErrNoProgress, p.stalled)
	}
	return nil
}

// maxRecent bounds SyncMark.Recent: past it, the records of the oldest
// updated_at are forgotten, and appended again should they come again.
const maxRecent = 10_000

// advance returns the mark at at, remembering m's records and appended
// (event id → updated_at) that a run asking from at less overlap gets
// again.
func (m SyncMark) advance(at time.Time, appended map[string]time.Time, overlap time.Duration) SyncMark {
	from := at.Add(-overlap)
	recent := make(map[string]time.Time, len(m.Recent)+len(appended))
	for _, src := range []map[string]time.Time{m.Recent, appended} {
		for id, u := range src {
			if !u.Before(from) {
				recent[id] = u
			}
		}
	}
	if len(recent) > maxRecent {
		ids := slices.Collect(maps.Keys(recent))
		slices.SortFunc(ids, func(a, b string) int { return recent[b].Compare(recent[a]) })
		for _, id := range ids[maxRecent:] {
			delete(recent, id)
		}
	}
	return SyncMark{At: at, Recent: recent}
}

// DefaultMaxRateLimitWait is SyncConfig.MaxRateLimitWait's default.
const DefaultMaxRateLimitWait = 5 * time.Minute

func newestOf(recs []Record) time.Time {
	var t time.Time
	for _, rec := range recs {
		if rec.UpdatedAt.After(t) {
			t = rec.UpdatedAt
		}
	}
	return t
}

// fetch gets one page: it waits for the shared quota before every request,
// waits out 429s (draining the shared bucket for Retry-After), and retries
// 5xx and transport failures with doubling delays.
func (r *StartedSync) fetch(ctx context.Context, run *SyncRun, q Quota, req PageRequest) (Page, error) {
	s := r.s
	attempts, waits, delay, renewed := 0, 0, s.cfg.RetryDelay, false
	for {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.MaxRateLimitWait)
		err := s.d.Limiter.Wait(wctx, run.IntegrationID, q)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Page{}, context.Cause(ctx)
			}
			return Page{}, fmt.Errorf("rate limiter: %w", err)
		}
		run.Requests++
		page, err := s.d.API.List(ctx, r.conn, req)
		if err == nil {
			return page, nil
		}
		if ctx.Err() != nil {
			return Page{}, context.Cause(ctx)
		}
		var rl *RateLimitedError
		if errors.As(err, &rl) {
			run.RateLimited++
			waits++
			if waits > s.cfg.MaxRateLimitWaits {
				return Page{}, fmt.Errorf("gave up after %d rate-limited answers: %w", waits, err)
			}
			wait := max(rl.RetryAfter, 100*time.Millisecond)
			// Best effort: when the bucket cannot be drained this process
			// still waits; the others learn from their own 429s.
			_ = s.d.Limiter.Drain(ctx, run.IntegrationID, q, wait)
			if wait > s.cfg.MaxRateLimitWait {
				return Page{}, fmt.Errorf("softpro asked to wait %s, longer than a run waits (%s): %w", wait, s.cfg.MaxRateLimitWait, err)
			}
			if err := sleep(ctx, wait); err != nil {
				return Page{}, err
			}
			continue
		}
		if errors.Is(err, ErrTokenRefused) && !renewed {
			// Once more with a new token, after the quota's say.
			renewed = true
			continue
		}
		attempts++
		if !IsRetryable(err) || attempts >= s.cfg.PageAttempts {
			return Page{}, fmt.Errorf("list page (attempt %d): %w", attempts, err)
		}
		run.Retries++
		if err := sleep(ctx, delay); err != nil {
			return Page{}, err
		}
		delay *= 2
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// appendPage appends every record of a page as a sync event, several at a
// time, and returns once all are acknowledged (or the first failure). A
// record the log refuses for its size can never be appended: it is left
// out, and its id returned, rather than failing the page for ever. ids
// are the records' event ids (domain.SyncEventID), in the order of recs.
func (r *StartedSync) appendPage(ctx context.Context, run *SyncRun, t domain.EventType, recs []Record, ids []string) (tooLarge []string, err error) {
	s := r.s
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.AppendConcurrency)
	now := s.cfg.Now().UTC()
	corr := fmt.Sprintf("sync-run-%d", run.ID)
	for i, rec := range recs {
		env := domain.Envelope{
			Schema: domain.SchemaV1, EventID: ids[i],
			IntegrationID: run.IntegrationID, Type: t, OccurredAt: rec.UpdatedAt.UTC(), ReceivedAt: now,
			Source: domain.SourceSync, Priority: t.Priority(), CorrelationID: corr, Payload: rec.Raw,
		}
		g.Go(func() error {
			if _, err := s.d.Appender.Append(gctx, env); err != nil {
				if errors.Is(err, ErrRecordTooLarge) {
					mu.Lock()
					tooLarge = append(tooLarge, rec.ID)
					mu.Unlock()
					return nil
				}
				return fmt.Errorf("append %s: %w", env.EventID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(tooLarge)
	return tooLarge, nil
}

package projections

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Refolder folds entities again from the whole log, in the background. A
// manual retry appends a FAILED event anew, so the live projector applies
// it after events that followed it on the log; and the projectors of two
// topics sharing an entity (a kind's webhooks and the sync topic) apply
// its events against append order while one lags the other. The log's
// fold (validate, a rebuild) applies each event at its first position in
// append order. Whenever the two can differ (see Projector.WithRefold) the
// projector hands the entity here, and its row is folded again from the
// log with the live rules, each event once at its first position, as a
// rebuild would. Safe for concurrent use.
type Refolder struct {
	replayer *Replayer
	topics   []string
	report   func(RefoldResult)
	// retryDelay is the wait before entities whose refold failed are
	// queued again.
	retryDelay time.Duration

	mu sync.Mutex
	// pending holds, per integration, the entities queued, each with the
	// earliest creation time named for it.
	pending map[string]map[domain.EntityKey]time.Time
	wake    chan struct{}
}

// Refold names an entity to fold again: Created is its creation time
// (SoftPro's earliest change of it, the change at hand included), zero
// when unknown.
type Refold struct {
	Key     domain.EntityKey
	Created time.Time
}

// refoldClockMargin is how far before an entity's creation time its
// refold starts reading the log. An event is appended after it happens, so
// every event of the entity was appended after its creation time, unless
// SoftPro's clock (or the time zone its timestamps are read in) runs
// ahead of ours: by up to this much, the window still holds them.
const refoldClockMargin = 48 * time.Hour

// RefoldResult is what one refold of an integration's entities did.
type RefoldResult struct {
	IntegrationID string
	Entities      []domain.EntityKey
	Replay        ReplayReport
	Err           error
}

// refoldRetryDelay is a Refolder's retryDelay.
const refoldRetryDelay = 5 * time.Second

// NewRefolder returns a refolder replaying topics (nil: domain.EventTopics)
// through replayer; report, when set, is called after each refold.
func NewRefolder(replayer *Replayer, topics []string, report func(RefoldResult)) *Refolder {
	if replayer == nil {
		panic("projections: NewRefolder needs a replayer")
	}
	if report == nil {
		report = func(RefoldResult) {}
	}
	return &Refolder{replayer: replayer, topics: topics, report: report, retryDelay: refoldRetryDelay,
		pending: map[string]map[domain.EntityKey]time.Time{}, wake: make(chan struct{}, 1)}
}

// Add queues entities for a refold; it never blocks.
func (f *Refolder) Add(refolds []Refold) {
	if len(refolds) == 0 {
		return
	}
	f.mu.Lock()
	for _, r := range refolds {
		id := r.Key.IntegrationID
		if f.pending[id] == nil {
			f.pending[id] = map[domain.EntityKey]time.Time{}
		}
		created := r.Created
		if at, ok := f.pending[id][r.Key]; ok {
			created = earliest(at, created)
		}
		f.pending[id][r.Key] = created
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run refolds queued entities until ctx ends, one integration at a time.
// Each refold reads the integration's log from refoldClockMargin before
// the earliest creation time of its entities (the whole log when one is
// unknown). Entities whose refold failed are queued again after a pause.
// Entities still queued when ctx ends are left to `gaps fill`, which finds
// them as differing rows.
func (f *Refolder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for {
			id, refolds := f.take()
			if id == "" {
				break
			}
			keys := make([]domain.EntityKey, len(refolds))
			from := refolds[0].Created
			for i, r := range refolds {
				keys[i] = r.Key
				from = earliest(from, r.Created)
			}
			if !from.IsZero() {
				from = from.Add(-refoldClockMargin)
			}
			rep, err := f.refold(ctx, id, keys, from)
			if ctx.Err() != nil {
				return
			}
			f.report(RefoldResult{IntegrationID: id, Entities: keys, Replay: rep, Err: err})
			// A refold that panicked would panic again: it is reported,
			// and left to gaps fill, which names the entities as differing.
			var perr *PanicError
			if err != nil && !errors.As(err, &perr) {
				go func() {
					select {
					case <-ctx.Done():
					case <-time.After(f.retryDelay):
						f.Add(refolds)
					}
				}()
			}
		}
	}
}

// refold is Replayer.Refold with a panic turned into its error: the
// refolder runs in the serving process.
func (f *Refolder) refold(ctx context.Context, id string, keys []domain.EntityKey, from time.Time) (rep ReplayReport, err error) {
	defer func() {
		if perr := Recovered(recover()); perr != nil {
			err = fmt.Errorf("refold %s: %w", id, perr)
		}
	}()
	return f.replayer.Refold(ctx, id, f.topics, keys, from)
}

// take removes and returns one integration's queued entities, in key
// order; id is empty when none are queued.
func (f *Refolder) take() (id string, refolds []Refold) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, rs := range f.pending {
		delete(f.pending, i)
		for _, k := range slices.SortedFunc(maps.Keys(rs), compareEntityKeys) {
			refolds = append(refolds, Refold{Key: k, Created: rs[k]})
		}
		return i, refolds
	}
	return "", nil
}

// Refold folds keys, entities of one integration, again from nothing with
// the live rules, from the integration's records appended at or after from
// (zero: the log start), each event once at its first position in append
// order, and writes their rows (and transactions' status histories) as
// Replay does for ReplayRequest.Refold. Unlike Replay it writes nothing for
// other records: it reads the log and folds in memory, then writes once.
// from must precede every event of keys (see refoldClockMargin); a time
// still to come reads the whole log.
func (r *Replayer) Refold(ctx context.Context, integrationID string, topics []string, keys []domain.EntityKey, from time.Time) (ReplayReport, error) {
	started := r.now()
	if len(topics) == 0 {
		topics = domain.EventTopics
	}
	if from.After(started) {
		from = time.Time{}
	}
	rep := ReplayReport{IntegrationID: integrationID}
	if !from.IsZero() {
		f := from.UTC()
		rep.From = &f
	}
	bounds, err := r.log.Bounds(ctx, topics, from, time.Time{})
	if err != nil {
		return rep, fmt.Errorf("refold: %w", err)
	}
	bounds = onlyIntegration(bounds, r.log, integrationID)
	st := newRepairState()
	for _, k := range keys {
		st.refold[k] = true
	}
	first := func(k EventKey) bool {
		if st.seen[k] {
			return false
		}
		st.seen[k] = true
		return true
	}
	err = r.log.Scan(ctx, ScanRequest{Bounds: bounds, IntegrationID: integrationID, BatchSize: 2000},
		func(recs []ScannedRecord) error {
			for _, rec := range recs {
				rep.Records++
				switch eff, folded := foldRefold(rec, st.refold, first, st.state, st.history); {
				case !folded:
				case eff.Applied:
					rep.Applied++
				default:
					rep.Unchanged++
				}
			}
			return nil
		})
	if err == nil {
		err = r.settle(ctx, ReplayRequest{IntegrationID: integrationID}, topics, bounds, st)
	}
	rep.Elapsed = r.now().Sub(started)
	if err != nil {
		return rep, fmt.Errorf("refold: %w", err)
	}
	return rep, nil
}

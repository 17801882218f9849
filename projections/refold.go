package projections

import (
	"context"
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

	mu      sync.Mutex
	pending map[string]map[domain.EntityKey]bool
	wake    chan struct{}
}

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
		pending: map[string]map[domain.EntityKey]bool{}, wake: make(chan struct{}, 1)}
}

// Add queues keys for a refold; it never blocks.
func (f *Refolder) Add(keys []domain.EntityKey) {
	if len(keys) == 0 {
		return
	}
	f.mu.Lock()
	for _, k := range keys {
		if f.pending[k.IntegrationID] == nil {
			f.pending[k.IntegrationID] = map[domain.EntityKey]bool{}
		}
		f.pending[k.IntegrationID][k] = true
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run refolds queued entities until ctx ends, one integration at a time
// (each refold reads that integration's whole log). Entities whose refold
// failed are queued again after a pause. Entities still queued when ctx
// ends are left to `gaps fill`, which finds them as differing rows.
func (f *Refolder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for {
			id, keys := f.take()
			if id == "" {
				break
			}
			rep, err := f.replayer.Replay(ctx, ReplayRequest{IntegrationID: id, Topics: f.topics, Refold: keys})
			if ctx.Err() != nil {
				return
			}
			f.report(RefoldResult{IntegrationID: id, Entities: keys, Replay: rep, Err: err})
			if err != nil {
				go func() {
					select {
					case <-ctx.Done():
					case <-time.After(f.retryDelay):
						f.Add(keys)
					}
				}()
			}
		}
	}
}

// take removes and returns one integration's queued entities, in key
// order; id is empty when none are queued.
func (f *Refolder) take() (id string, keys []domain.EntityKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ks := range f.pending {
		delete(f.pending, i)
		keys = slices.SortedFunc(maps.Keys(ks), compareEntityKeys)
		return i, keys
	}
	return "", nil
}

package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// LogPosition is where one record lives on the event log.
type LogPosition struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Claim is a FAILED event taken for a manual retry: its audit row is
// RECEIVED again, so no other retry can take it until it fails anew.
type Claim struct {
	// RowID is the audit row's uuid.
	RowID string
	EventKey
	EventType  domain.EventType
	ReceivedAt time.Time
	// At is the record that failed: the original append or the last
	// retry's.
	At LogPosition
}

// RetryStore claims FAILED events. A claim is a compare-and-set from FAILED
// to RECEIVED (moving the event out of the failed count of its hour), so of
// two concurrent retries of one event exactly one gets the claim.
type RetryStore interface {
	// ClaimEvent claims the event ref names: ErrNotFound when there is
	// none, ErrAmbiguous when a SoftPro event id names several
	// integrations' events, ErrNotFailed when it is not FAILED (or another
	// retry claimed it first).
	ClaimEvent(ctx context.Context, ref EventRef, now time.Time) (Claim, error)
	// ClaimFailed claims every FAILED event of integrationID, or only
	// those among eventIDs (SoftPro event ids) when it is not empty.
	ClaimFailed(ctx context.Context, integrationID string, eventIDs []string, now time.Time) ([]Claim, error)
	// Release puts claims whose record could not be re-appended back to
	// FAILED with reason, unless the projector has moved them on already.
	Release(ctx context.Context, claims []Claim, reason string, now time.Time) error
}

// LogReader reads records back from the event log.
type LogReader interface {
	// ReadEnvelopes returns the envelope at each position. Positions whose
	// record does not exist or is not an envelope are absent from the map;
	// an error means the log could not be read.
	ReadEnvelopes(ctx context.Context, at []LogPosition) (map[LogPosition]domain.Envelope, error)
}

// TopicAppender appends an envelope to a given topic and returns once the
// broker acknowledged it.
type TopicAppender interface {
	AppendTo(ctx context.Context, topic string, e domain.Envelope) error
}

// ErrNotOnLog: the failed event's record cannot be read back from the log.
var ErrNotOnLog = errors.New("event record not on the log")

// Retrier re-appends FAILED events to their topic, as read back from the
// log, with source "retry" and the attempt count carried. The projector
// then applies each (integration, event id) at most once, however often it
// is appended. Safe for concurrent use.
type Retrier struct {
	store  RetryStore
	log    LogReader
	append TopicAppender
	now    func() time.Time
}

// NewRetrier returns a Retrier; now nil means time.Now.
func NewRetrier(store RetryStore, log LogReader, appender TopicAppender, now func() time.Time) *Retrier {
	if store == nil || log == nil || appender == nil {
		panic("projections: NewRetrier needs a store, a log reader and an appender")
	}
	if now == nil {
		now = time.Now
	}
	return &Retrier{store: store, log: log, append: appender, now: now}
}

// Retry re-appends one FAILED event. The errors of RetryStore.ClaimEvent
// come back as they are; ErrNotOnLog when its record cannot be read; any
// other error means nothing was appended and the event is FAILED again.
func (r *Retrier) Retry(ctx context.Context, ref EventRef, correlationID string) (Claim, error) {
	c, err := r.store.ClaimEvent(ctx, ref, r.now().UTC())
	if err != nil {
		return Claim{}, err
	}
	n, err := r.reappend(ctx, []Claim{c}, correlationID)
	if err != nil {
		return Claim{}, err
	}
	if n == 0 {
		return Claim{}, fmt.Errorf("retry %s: %w", c.EventID, ErrNotOnLog)
	}
	return c, nil
}

// RetryFailed re-appends the FAILED events of integrationID (those among
// eventIDs when given) and returns how many were re-appended. Events whose
// record cannot be read or appended stay FAILED and are not counted.
func (r *Retrier) RetryFailed(ctx context.Context, integrationID string, eventIDs []string, correlationID string) (int, error) {
	claims, err := r.store.ClaimFailed(ctx, integrationID, eventIDs, r.now().UTC())
	if err != nil {
		return 0, err
	}
	if len(claims) == 0 {
		return 0, nil
	}
	return r.reappend(ctx, claims, correlationID)
}

// appendConcurrency bounds the appends in flight of one batch retry; the
// producer batches concurrent appends into shared requests.
const appendConcurrency = 32

// reappend reads the claimed events back from the log and appends them
// again; claims that could not be appended are released.
func (r *Retrier) reappend(ctx context.Context, claims []Claim, correlationID string) (int, error) {
	at := make([]LogPosition, len(claims))
	for i, c := range claims {
		at[i] = c.At
	}
	envs, err := r.log.ReadEnvelopes(ctx, at)
	if err != nil {
		r.release(ctx, claims, fmt.Sprintf("retry: read log: %v", err))
		return 0, fmt.Errorf("retry: read log: %w", err)
	}
	var (
		mu       sync.Mutex
		failed   []Claim
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, appendConcurrency)
	)
	fail := func(c Claim, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, c)
		if firstErr == nil {
			firstErr = err
		}
	}
	var notOnLog []Claim
	for _, c := range claims {
		e, ok := envs[c.At]
		if !ok || e.IntegrationID != c.IntegrationID || e.EventID != c.EventID {
			notOnLog = append(notOnLog, c)
			continue
		}
		e.Source = domain.SourceRetry
		e.Attempt++
		if correlationID != "" {
			e.CorrelationID = correlationID
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.append.AppendTo(ctx, c.At.Topic, e); err != nil {
				fail(c, err)
			}
		}()
	}
	wg.Wait()
	if len(notOnLog) > 0 {
		r.release(ctx, notOnLog, "retry: "+ErrNotOnLog.Error())
	}
	if len(failed) > 0 {
		r.release(ctx, failed, fmt.Sprintf("retry: append: %v", firstErr))
	}
	n := len(claims) - len(failed) - len(notOnLog)
	if n == 0 && firstErr != nil {
		return 0, fmt.Errorf("retry: append: %w", firstErr)
	}
	return n, nil
}

// release is best effort: a claim left RECEIVED shows the event as in
// flight, and an operator can see it in the events list.
func (r *Retrier) release(ctx context.Context, claims []Claim, reason string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = r.store.Release(rctx, claims, reason, r.now().UTC())
}

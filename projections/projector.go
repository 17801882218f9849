// Package projections turns the event log into the Postgres read models:
// the projector applies events through the domain rules in one transaction
// with a per (projection, topic, partition) checkpoint, so a redelivered
// record changes nothing. It declares the store it needs; infra/postgres
// provides it.
package projections

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/roisystems/softprohub/domain"
)

// Record is one event read from the log, with where it lives.
type Record struct {
	Partition
	Offset   int64
	Envelope domain.Envelope
	// Attempt is the 1-based attempt at projecting this delivery; 0 counts
	// as 1. Attempt-1 is stored as the audit row's retry count.
	Attempt int
	// StartedAt is when processing of the record first started; zero means
	// the projector's clock at apply time.
	StartedAt time.Time
	// Timestamp is when the record was appended (its timestamp on the
	// log); zero when unknown.
	Timestamp time.Time
}

// Outcome is what applying one record did, a metrics label.
type Outcome string

// Outcomes of Apply.
const (
	// OutcomeApplied: the event changed its entity and is COMPLETED.
	OutcomeApplied Outcome = "applied"
	// OutcomeStale: the event is older than its entity's state; it is
	// COMPLETED in the audit but changed nothing (newest wins).
	OutcomeStale Outcome = "stale"
	// OutcomeSkipped: the event's type changes no entity; it is SKIPPED.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeDuplicate: an event with the same id is already final (a
	// duplicate append); nothing changed.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeRedelivered: the offset was applied before; nothing changed.
	OutcomeRedelivered Outcome = "redelivered"
)

// Projector applies records to the read models. It is safe for concurrent
// use as long as no two callers apply the same partition at once (a
// consumer group guarantees that; the checkpoint compare-and-set turns a
// violation into ErrCheckpointMoved or a no-op, never a double effect).
type Projector struct {
	name  string
	store Store
	now   func() time.Time
	// gapCheck makes Apply refuse records beyond their partition's
	// checkpoint (WithGapCheck).
	gapCheck bool
	// keys, when set, holds every key queried so far in a store that
	// started empty; Apply looks up only the keys it may hold (builds).
	keys *KeySet
	// refold, when set, is handed after each commit the entities that
	// records reached out of log order (WithRefold).
	refold func([]Refold)
	// unchecked makes Apply and Fail neither read nor write checkpoints
	// (withoutCheckpoints).
	unchecked bool
	// unlocked makes Apply's lookups lock no rows (owningRows).
	unlocked bool
}

// withoutCheckpoints returns a copy of p that neither reads nor writes
// checkpoints: a build applies each record of its bounds exactly once and
// records where it got to when all are applied, so the records of one
// partition may be applied by several transactions in any order between
// them (a rebuild applies an integration's records entity kind by entity
// kind, each in append order).
func (p *Projector) withoutCheckpoints() *Projector {
	q := *p
	q.unchecked = true
	return &q
}

// WithRefold returns a copy of p that hands fn, after each commit, the
// entities records reached out of log order: a retried event (source
// retry) reaching an entity that holds another event's state, as it was
// first appended before events applied since; and a record reaching an
// entity last changed by an event of another topic appended after it
// (overtaken). The log's fold (validate, a rebuild)
// takes each event at its first position in append order, and newest-wins
// with merged data depends on the order, so the entity's row may differ
// from it until it is folded again (Refolder.Add).
func (p *Projector) WithRefold(fn func([]Refold)) *Projector {
	q := *p
	q.refold = fn
	return &q
}

// WithGapCheck returns a copy of p whose Apply fails with a *GapError,
// writing nothing, when a record's offset is beyond its partition's
// checkpoint: records between the two were never applied (a commit lost
// with asynchronous commits, offsets moved by hand, a poisoned record). The
// live projectors use it and fill the gap from the log (FillGap); rebuilds
// and replays, which read the log themselves, do not.
func (p *Projector) WithGapCheck() *Projector { return p.checkingGaps(true) }

// writingFresh returns a copy of p that looks up only keys that keys may
// hold: keys must have seen every query made in p's store since it was
// created empty.
func (p *Projector) writingFresh(keys *KeySet) *Projector {
	q := *p
	q.keys = keys
	return &q
}

// owningRows returns a copy of p whose lookups lock no rows (Query.Unlocked):
// the caller guarantees that no other transaction writes the rows p's
// batches read while they are applied.
func (p *Projector) owningRows() *Projector {
	q := *p
	q.unlocked = true
	return &q
}

func (p *Projector) checkingGaps(on bool) *Projector {
	q := *p
	q.gapCheck = on
	return &q
}

// GapError says that records [From, To) of Partition were never applied;
// From is -1 when the partition has no checkpoint (from the log start).
type GapError struct {
	Partition
	From, To int64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("%s/%d: offsets %d to %d were never applied", e.Topic, e.Partition.Partition, e.From, e.To)
}

// NewProjector returns a projector whose checkpoints are kept under name (a
// wire contract like a consumer group: a new name re-applies the log).
// now is the clock; nil means time.Now.
func NewProjector(name string, store Store, now func() time.Time) *Projector {
	if name == "" || store == nil {
		panic("projections: NewProjector needs a name and a store")
	}
	if now == nil {
		now = time.Now
	}
	return &Projector{name: name, store: store, now: now}
}

// Name is the projection name checkpoints are kept under.
func (p *Projector) Name() string { return p.name }

// Apply applies recs, in order, in one transaction together with their
// partitions' checkpoints, and returns one outcome per record. Records at
// offsets below their partition's checkpoint are redelivered and change
// nothing. A record whose payload can never project fails the whole call
// with a PermanentError before anything is written; the caller decides
// (poison it, or split the batch). Records of one partition must come in
// offset order.
func (p *Projector) Apply(ctx context.Context, recs ...Record) ([]Outcome, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	changes := make([]*domain.Change, len(recs))
	q := Query{Projection: p.name, Unlocked: p.unlocked}
	for i, r := range recs {
		c, ok, err := domain.ChangeOf(r.Envelope)
		if err != nil {
			return nil, Permanent(fmt.Errorf("project %s/%d@%d: %w", r.Topic, r.Partition.Partition, r.Offset, err))
		}
		if ok {
			changes[i] = &c
			q.Entities = append(q.Entities, c.Key)
		}
		if !p.unchecked {
			q.Partitions = append(q.Partitions, r.Partition)
		}
		q.Events = append(q.Events, keyOf(r.Envelope))
	}
	q.Partitions = uniq(q.Partitions)
	q.Events = uniq(q.Events)
	q.Entities = uniq(q.Entities)
	if p.keys != nil {
		p.keys.narrow(&q)
	}

	var (
		outcomes   []Outcome
		outOfOrder []Refold
	)
	err := p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		snap, err := tx.Load(ctx, q)
		if err != nil {
			return err
		}
		if p.gapCheck {
			if gap := firstGap(snap, recs); gap != nil {
				return gap
			}
		}
		var w Writes
		w, outcomes, outOfOrder = plan(p.name, snap, recs, changes, p.now().UTC())
		if p.unchecked {
			w.Checkpoints = nil
		}
		if w.Empty() {
			return nil
		}
		return tx.Save(ctx, w)
	})
	if err != nil {
		return nil, fmt.Errorf("project %d records: %w", len(recs), err)
	}
	if p.refold != nil && len(outOfOrder) > 0 {
		p.refold(outOfOrder)
	}
	return outcomes, nil
}

// Behind returns, for each partition of applied (the offset after the last
// record whose transaction committed), the gap between the partition's
// checkpoint and that offset if the checkpoint is behind it: records
// committed, and so acknowledged, that the database lost since (a crash
// losing asynchronous commits). Records that were never committed show
// nowhere here; a live projector finds those when the partition's next
// record arrives.
func (p *Projector) Behind(ctx context.Context, applied map[Partition]int64) ([]*GapError, error) {
	parts := slices.Collect(maps.Keys(applied)) // Load locks them in order
	var gaps []*GapError
	err := p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		snap, err := tx.Load(ctx, Query{Projection: p.name, Partitions: parts})
		if err != nil {
			return err
		}
		for _, part := range parts {
			next, ok := snap.Checkpoints[part]
			if !ok {
				next = -1
			}
			if next < applied[part] {
				gaps = append(gaps, &GapError{Partition: part, From: next, To: applied[part]})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints behind: %w", err)
	}
	return gaps, nil
}

// firstGap returns the first partition whose first record in recs lies
// beyond its checkpoint.
func firstGap(snap Snapshot, recs []Record) *GapError {
	seen := map[Partition]bool{}
	for _, r := range recs {
		if seen[r.Partition] {
			continue
		}
		seen[r.Partition] = true
		next, ok := snap.Checkpoints[r.Partition]
		switch {
		case ok && r.Offset > next:
			return &GapError{Partition: r.Partition, From: next, To: r.Offset}
		case !ok && r.Offset > 0:
			return &GapError{Partition: r.Partition, From: -1, To: r.Offset}
		}
	}
	return nil
}

// plan is the pure core of Apply: from what is stored and the records, what
// to write, what happened to each record, and the entities records reached
// out of log order (see WithRefold).
func plan(projection string, snap Snapshot, recs []Record, changes []*domain.Change, now time.Time) (Writes, []Outcome, []Refold) {
	w := Writes{Audit: make([]AuditRow, 0, len(recs))}
	outcomes := make([]Outcome, len(recs))
	next := make(map[Partition]int64, 1)
	for part, off := range snap.Checkpoints {
		next[part] = off
	}
	var advanced []Partition
	audit := make(map[EventKey]AuditRow, len(recs))
	auditAt := make(map[EventKey]int, len(recs))
	entities := make(map[domain.EntityKey]domain.Entity, len(snap.Entities))
	// dirty holds the entities changed, each with whether its data is its
	// last event's data as it came (domain.Effect.DataAsCarried).
	dirty := make(map[domain.EntityKey]bool)
	metrics := newMetricsAcc()
	var outOfOrder []Refold

	for i, r := range recs {
		if off, ok := next[r.Partition]; ok && r.Offset < off {
			outcomes[i] = OutcomeRedelivered
			continue
		}
		if !slices.Contains(advanced, r.Partition) {
			advanced = append(advanced, r.Partition)
		}
		next[r.Partition] = r.Offset + 1

		key := keyOf(r.Envelope)
		_, stored := snap.Audit[key]
		prev, hasPrev := audit[key]
		if !hasPrev {
			prev, hasPrev = snap.Audit[key]
		}
		if hasPrev && prev.Status.Final() {
			outcomes[i] = OutcomeDuplicate
			continue
		}
		row := auditRow(r, now)
		row.New = !stored
		if hasPrev {
			row.ReceivedAt = prev.ReceivedAt
			if prev.ProcessingStartedAt != nil {
				row.ProcessingStartedAt = prev.ProcessingStartedAt
			}
			row.RetryCount = max(row.RetryCount, prev.RetryCount)
			row.LastRetryAt = prev.LastRetryAt
		}
		if c := changes[i]; c == nil {
			row.Status = StatusSkipped
			outcomes[i] = OutcomeSkipped
		} else {
			cur, ok := entities[c.Key]
			if !ok {
				cur = snap.Entities[c.Key]
			}
			retried := r.Envelope.Source == domain.SourceRetry && cur.Exists && cur.LastEventID != c.EventID
			if retried || overtaken(snap, c.Key, r) {
				outOfOrder = refoldOnce(outOfOrder, Refold{Key: c.Key, Created: earliest(cur.CreatedAt, c.At)})
			}
			nextState, eff := domain.Apply(cur, *c)
			applied := eff.Applied
			row.Applied = &applied
			row.Status = StatusCompleted
			outcomes[i] = OutcomeStale
			if applied {
				outcomes[i] = OutcomeApplied
				entities[c.Key] = nextState
				dirty[c.Key] = eff.DataAsCarried
				if eff.StatusChange != nil {
					w.StatusChanges = append(w.StatusChanges, *eff.StatusChange)
				}
			} else if eff.Earlier {
				// Stale, but older than the creation: the row is written
				// for its creation time; its data is as it was.
				entities[c.Key] = nextState
				if _, ok := dirty[c.Key]; !ok {
					dirty[c.Key] = false
				}
			}
		}
		ms := processingMs(now, row.ReceivedAt)
		row.ProcessedAt = &now
		row.ProcessingTimeMs = &ms

		d := metrics.get(r.Envelope.IntegrationID, r.Envelope.Type, row.ReceivedAt)
		if !hasPrev {
			d.Received++
		}
		if hasPrev && prev.Status == StatusFailed {
			d.Failed--
		}
		if row.Status == StatusSkipped {
			d.Skipped++
		} else {
			d.Completed++
			d.ProcessingMs += ms
			d.MaxProcessingMs = max(d.MaxProcessingMs, ms)
			d.LatencyBuckets[latencyBucket(ms)]++
		}

		audit[key] = row
		if j, ok := auditAt[key]; ok {
			w.Audit[j] = row
		} else {
			auditAt[key] = len(w.Audit)
			w.Audit = append(w.Audit, row)
		}
	}

	for _, part := range advanced {
		prev, ok := snap.Checkpoints[part]
		if !ok {
			prev = -1
		}
		w.Checkpoints = append(w.Checkpoints, Checkpoint{Projection: projection, Partition: part, Prev: prev, Next: next[part]})
	}
	keys := make([]domain.EntityKey, 0, len(dirty))
	for k := range dirty {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareEntityKeys)
	w.Entities = make([]domain.Entity, 0, len(keys))
	w.NewEntities = make([]bool, 0, len(keys))
	w.DataInAudit = make([]bool, 0, len(keys))
	for _, k := range keys {
		_, stored := snap.Entities[k]
		w.Entities = append(w.Entities, entities[k])
		w.NewEntities = append(w.NewEntities, !stored)
		w.DataInAudit = append(w.DataInAudit, dirty[k])
	}
	w.Metrics = metrics.list()
	return w, outcomes, outOfOrder
}

// refoldOnce adds r to rs, or moves the creation time of the entry of its
// entity back to r's.
func refoldOnce(rs []Refold, r Refold) []Refold {
	i := slices.IndexFunc(rs, func(x Refold) bool { return x.Key == r.Key })
	if i < 0 {
		return append(rs, r)
	}
	rs[i].Created = earliest(rs[i].Created, r.Created)
	return rs
}

// earliest is the earlier of a and b, zero (unknown) when either is.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if b.Before(a) {
		return b
	}
	return a
}

// overtaken reports whether the stored row of key was last changed by an
// event of another topic whose first record comes after r in the order a
// rebuild merges topics in (append time, then topic name): the two are
// projected in the opposite of their append order. Only the sync topic
// shares entities with another (a kind's webhooks), so this is a sync
// snapshot projected behind a newer webhook, or the other way round, while
// one topic's projector lags the other's. For audit rows without an append
// time (written before it was kept) the time of receipt stands in, which
// misses an event received before r was appended but appended after it;
// validate names such a row and gaps fill folds it again.
func overtaken(snap Snapshot, key domain.EntityKey, r Record) bool {
	last, ok := snap.LastChanges[key]
	if !ok || r.Timestamp.IsZero() || last.Topic == r.Topic {
		return false
	}
	if last.AppendedAt.IsZero() {
		// Received after r was appended: appended after it, too.
		return last.ReceivedAt.After(r.Timestamp)
	}
	// The order a rebuild merges topics in: append time, then topic name.
	return last.AppendedAt.After(r.Timestamp) || last.AppendedAt.Equal(r.Timestamp) && last.Topic > r.Topic
}

// RecordAttempt notes a failed attempt at rec in the audit: the event shows
// as PROCESSING with its retry count and last error until it completes or
// fails for good. Events already past PROCESSING are left alone. It writes
// no checkpoint and is best effort: callers ignore its error, as the store
// is often the very thing that failed.
func (p *Projector) RecordAttempt(ctx context.Context, rec Record, cause error) error {
	key := keyOf(rec.Envelope)
	if p.keys != nil {
		p.keys.add(key)
	}
	err := p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		snap, err := tx.Load(ctx, Query{Projection: p.name, Events: []EventKey{key}})
		if err != nil {
			return err
		}
		now := p.now().UTC()
		row := auditRow(rec, now)
		row.Status = StatusProcessing
		row.RetryCount = max(rec.Attempt, 1)
		row.LastRetryAt = &now
		row.Error = cause.Error()
		var w Writes
		if prev, ok := snap.Audit[key]; ok {
			if prev.Status != StatusProcessing {
				return nil
			}
			row.ReceivedAt = prev.ReceivedAt
			row.ProcessingStartedAt = prev.ProcessingStartedAt
			row.RetryCount = max(row.RetryCount, prev.RetryCount)
		} else {
			row.New = true
			m := newMetricsAcc()
			m.get(key.IntegrationID, rec.Envelope.Type, row.ReceivedAt).Received++
			w.Metrics = m.list()
		}
		w.Audit = []AuditRow{row}
		return tx.Save(ctx, w)
	})
	if err != nil {
		return fmt.Errorf("record attempt %s: %w", key.EventID, err)
	}
	return nil
}

// Failure is an event that could not be projected, as the poison queue
// reports it.
type Failure struct {
	// Record is the poison record: its position is checkpointed under the
	// projector's name; its envelope is the failed event.
	Record Record
	// Origin is where the failed event lives on the event log.
	Origin Partition
	// OriginOffset is the failed event's offset.
	OriginOffset int64
	// OriginAppendedAt is the failed event's log timestamp; zero when the
	// poison record does not carry it.
	OriginAppendedAt time.Time
	// Reason is the last error.
	Reason string
	// Attempts is how many times projecting it was tried.
	Attempts int
}

// Fail marks a poisoned event FAILED in the audit with its error, in one
// transaction with the poison record's checkpoint: a redelivered poison
// record changes nothing, and an event that has completed meanwhile (a
// manual retry) stays completed. An envelope without integration or event
// id only advances the checkpoint.
func (p *Projector) Fail(ctx context.Context, f Failure) error {
	r := f.Record
	key := keyOf(r.Envelope)
	hasKey := key.IntegrationID != "" && key.EventID != ""
	q := Query{Projection: p.name, Partitions: []Partition{r.Partition}}
	if p.unchecked {
		q.Partitions = nil
	}
	if hasKey {
		q.Events = []EventKey{key}
		if p.keys != nil {
			p.keys.add(key)
		}
	}
	err := p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		snap, err := tx.Load(ctx, q)
		if err != nil {
			return err
		}
		prevOff, hasCp := snap.Checkpoints[r.Partition]
		if hasCp && r.Offset < prevOff {
			return nil
		}
		if !hasCp {
			prevOff = -1
		}
		w := Writes{Checkpoints: []Checkpoint{{Projection: p.name, Partition: r.Partition, Prev: prevOff, Next: r.Offset + 1}}}
		if p.unchecked {
			w.Checkpoints = nil
		}
		prev, hasPrev := snap.Audit[key]
		if hasKey && !(hasPrev && prev.Status.Final()) {
			now := p.now().UTC()
			row := auditRow(r, now)
			row.Topic, row.Partition, row.Offset = f.Origin.Topic, f.Origin.Partition, f.OriginOffset
			row.AppendedAt = timeOrNil(f.OriginAppendedAt)
			row.Status = StatusFailed
			row.FailedAt = &now
			row.Error = f.Reason
			row.RetryCount = max(f.Attempts-1, 0)
			if row.RetryCount > 0 {
				row.LastRetryAt = &now
			}
			m := newMetricsAcc()
			if hasPrev {
				row.ReceivedAt = prev.ReceivedAt
				row.ProcessingStartedAt = prev.ProcessingStartedAt
				row.RetryCount = max(row.RetryCount, prev.RetryCount)
				row.LastRetryAt = later(row.LastRetryAt, prev.LastRetryAt)
			} else {
				row.New = true
				m.get(key.IntegrationID, r.Envelope.Type, row.ReceivedAt).Received++
			}
			if !hasPrev || prev.Status != StatusFailed {
				m.get(key.IntegrationID, r.Envelope.Type, row.ReceivedAt).Failed++
			}
			w.Audit = []AuditRow{row}
			w.Metrics = m.list()
		}
		return tx.Save(ctx, w)
	})
	if err != nil {
		return fmt.Errorf("fail %s: %w", key.EventID, err)
	}
	return nil
}

func keyOf(e domain.Envelope) EventKey {
	return EventKey{IntegrationID: e.IntegrationID, EventID: e.EventID}
}

// auditRow is the audit row for r without its status.
// MaxProcessingMs is the longest processing time the audit keeps (its
// column is an integer): about 24.8 days. An event projected later than
// that after its receipt (after a long outage, or by a replay or rebuild
// of an old log) records this rather than failing its transaction.
const MaxProcessingMs = math.MaxInt32

// processingMs is the time from receipt to now, within [0, MaxProcessingMs].
func processingMs(now, received time.Time) int64 {
	return min(max(now.Sub(received).Milliseconds(), 0), MaxProcessingMs)
}

func auditRow(r Record, now time.Time) AuditRow {
	e := r.Envelope
	started := r.StartedAt.UTC()
	if r.StartedAt.IsZero() {
		started = now
	}
	received := e.ReceivedAt.UTC()
	if e.ReceivedAt.IsZero() {
		received = started
	}
	headers, _ := segjson.Marshal(struct {
		Schema          string                 `json:"schema"`
		Priority        domain.Priority        `json:"priority"`
		SignatureScheme domain.SignatureScheme `json:"signatureScheme,omitempty"`
		KeyID           string                 `json:"keyId,omitempty"`
		CorrelationID   string                 `json:"correlationId,omitempty"`
		Attempt         int                    `json:"attempt,omitempty"`
	}{e.Schema, e.Priority, e.SignatureScheme, e.KeyID, e.CorrelationID, e.Attempt})
	payload := e.Payload
	if len(payload) == 0 || !segjson.Valid(payload) {
		payload = json.RawMessage("null")
	}
	return AuditRow{
		IntegrationID:       e.IntegrationID,
		EventID:             e.EventID,
		EventType:           e.Type,
		Payload:             payload,
		Headers:             headers,
		ReceivedAt:          received,
		ProcessingStartedAt: &started,
		RetryCount:          max(r.Attempt-1, 0),
		OccurredAt:          e.OccurredAt.UTC(),
		Source:              e.Source,
		Topic:               r.Topic,
		Partition:           r.Partition.Partition,
		Offset:              r.Offset,
		AppendedAt:          timeOrNil(r.Timestamp),
	}
}

// timeOrNil is t in UTC, nil when zero (unknown).
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// later returns the later of two optional times.
func later(a, b *time.Time) *time.Time {
	if a == nil || b != nil && b.After(*a) {
		return b
	}
	return a
}

type metricsKey struct {
	integrationID string
	eventType     domain.EventType
	hour          time.Time
}

// metricsAcc sums metrics deltas per row, keeping first-use order.
type metricsAcc struct {
	rows  map[metricsKey]*MetricsDelta
	order []metricsKey
}

func newMetricsAcc() *metricsAcc { return &metricsAcc{rows: map[metricsKey]*MetricsDelta{}} }

func (m *metricsAcc) get(integrationID string, t domain.EventType, at time.Time) *MetricsDelta {
	k := metricsKey{integrationID, t, at.UTC().Truncate(time.Hour)}
	d, ok := m.rows[k]
	if !ok {
		d = &MetricsDelta{IntegrationID: k.integrationID, EventType: t, Hour: k.hour,
			LatencyBuckets: make([]int64, len(LatencyBucketsMs)+1)}
		m.rows[k] = d
		m.order = append(m.order, k)
	}
	return d
}

func (m *metricsAcc) list() []MetricsDelta {
	out := make([]MetricsDelta, 0, len(m.order))
	for _, k := range m.order {
		out = append(out, *m.rows[k])
	}
	slices.SortFunc(out, func(a, b MetricsDelta) int { return compareMetricsRows(a.row(), b.row()) })
	return out
}

func (d MetricsDelta) row() MetricsRow {
	return MetricsRow{IntegrationID: d.IntegrationID, EventType: d.EventType, Hour: d.Hour}
}

// compareMetricsRows orders metrics rows by integration, type and hour:
// the order every writer of the metrics touches them in, so that
// concurrent writers queue on their locks rather than deadlock.
func compareMetricsRows(a, b MetricsRow) int {
	return cmp.Or(strings.Compare(a.IntegrationID, b.IntegrationID), strings.Compare(string(a.EventType), string(b.EventType)),
		a.Hour.Compare(b.Hour))
}

// sortedMetricsRows returns rows in compareMetricsRows order, each once.
func sortedMetricsRows(rows []MetricsRow) []MetricsRow {
	slices.SortFunc(rows, compareMetricsRows)
	return slices.CompactFunc(rows, func(a, b MetricsRow) bool { return compareMetricsRows(a, b) == 0 })
}

func compareEntityKeys(a, b domain.EntityKey) int {
	if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
		return c
	}
	if c := strings.Compare(a.IntegrationID, b.IntegrationID); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func uniq[T comparable](xs []T) []T {
	seen := make(map[T]bool, len(xs))
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

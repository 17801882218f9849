package projections

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Bounds is a part of the event log: per partition, the offsets from
// Start (inclusive) to End (exclusive).
type Bounds struct {
	Start map[Partition]int64
	End   map[Partition]int64
}

// Records is how many offsets the bounds span.
func (b Bounds) Records() int64 {
	var n int64
	for p, e := range b.End {
		if s, ok := b.Start[p]; ok && e > s {
			n += e - s
		}
	}
	return n
}

// From returns b starting at next (a projection's checkpoints) where it
// has one and at b.Start elsewhere; a checkpoint past the end empties its
// partition.
func (b Bounds) From(next map[Partition]int64) Bounds {
	out := Bounds{Start: make(map[Partition]int64, len(b.End)), End: b.End}
	for p, e := range b.End {
		s := b.Start[p]
		if n, ok := next[p]; ok {
			s = n
		}
		out.Start[p] = min(s, e)
	}
	return out
}

// partitionCounts is how many partitions each topic of b has.
func (b Bounds) partitionCounts() map[string]int {
	out := map[string]int{}
	for p := range b.End {
		out[p.Topic]++
	}
	return out
}

// ScanRequest says which records a scan reads.
type ScanRequest struct {
	Bounds
	// IntegrationID keeps only that integration's records; empty keeps all.
	IntegrationID string
	// Types keeps only records of these types; empty keeps all.
	Types []domain.EventType
	// BatchSize bounds the records handed over at once.
	BatchSize int
}

// ScannedRecord is a record read by a scan. Err is set (wrapping
// domain.ErrInvalidEnvelope) when its value is not an envelope.
type ScannedRecord struct {
	Record
	Err error
}

// LogScanner reads the event log directly, partition by partition, without
// a consumer group. infra/kafka.ReplayReader implements it.
type LogScanner interface {
	// Bounds lists, for every partition of the existing topics, the first
	// offset appended at or after from (the log start when from is zero)
	// and the first appended at or after to (the end offsets, listed now,
	// when to is zero).
	Bounds(ctx context.Context, topics []string, from, to time.Time) (Bounds, error)
	// Scan calls fn with batches of the records in req, from one
	// goroutine at a time. An integration's records come in append order:
	// each partition's in offset order, merged across topics by append
	// time, then topic name. When every topic has as many partitions, a
	// batch holds one partition number's records (an integration's, in
	// every topic, share one); otherwise batches mix them.
	Scan(ctx context.Context, req ScanRequest, fn func([]ScannedRecord) error) error
	// PartitionOf is the partition, among n, that holds an integration's
	// records.
	PartitionOf(integrationID string, n int) int32
}

// onlyIntegration narrows b to the partitions holding integrationID's
// records.
func onlyIntegration(b Bounds, log LogScanner, integrationID string) Bounds {
	if integrationID == "" {
		return b
	}
	counts := b.partitionCounts()
	out := Bounds{Start: map[Partition]int64{}, End: map[Partition]int64{}}
	for p, e := range b.End {
		if log.PartitionOf(integrationID, counts[p.Topic]) == p.Partition {
			out.Start[p], out.End[p] = b.Start[p], e
		}
	}
	return out
}

// ReplayRequest is a window of the log to apply again to the live read
// models.
type ReplayRequest struct {
	// IntegrationID limits the replay to one integration; empty replays
	// every integration.
	IntegrationID string
	// Types limits the replay to these event types; empty means all.
	Types []domain.EventType
	// Topics to read; default domain.EventTopics.
	Topics []string
	// From and To bound the window by append time; zero From is the log
	// start and zero To is the end offsets listed when the replay starts.
	From, To time.Time
	// BatchSize is how many records one transaction applies (default
	// 2000).
	BatchSize int
	// Refold names entities to fold again from nothing, whatever their
	// stored state (a row edited behind the system's back). The window
	// must then cover their whole history: From zero.
	Refold []domain.EntityKey
}

// ErrEmptyWindow is returned by Replay for a window whose From is not
// before its To, or is in the future: it holds no record, and asking for
// it is a mistake.
var ErrEmptyWindow = errors.New("empty window")

// ReplayReport says what a replay did.
type ReplayReport struct {
	IntegrationID string     `json:"integrationId,omitempty"`
	From          *time.Time `json:"from,omitempty"`
	To            *time.Time `json:"to,omitempty"`
	Records       int64      `json:"records"`
	Applied       int64      `json:"applied"`
	Unchanged     int64      `json:"unchanged"`
	AuditRestored int64      `json:"auditRestored"`
	Unprojectable int64      `json:"unprojectable"`
	// UnknownTypes are the requested types this release does not know: a
	// misspelling, or a type SoftPro added since (its events are SKIPPED).
	// The replay still reads them.
	UnknownTypes []domain.EventType `json:"unknownTypes,omitempty"`
	Elapsed      time.Duration      `json:"elapsedNs"`
}

// Replayer applies windows of the log again to the live read models, for
// gap filling and repairs. It is safe for concurrent use.
//
// A replay writes no checkpoint and reads none: it must not move the live
// projectors' checkpoints, and it must re-apply records the live projectors
// have long passed (a row deleted behind the system's back). What keeps it
// idempotent instead:
//   - an audit row is written only when the event has none (the (integration,
//     event id) dedup), so lifecycles are never doubled, and the hourly
//     metrics rows of the audit rows it writes are counted again from the
//     audit (Writes.Recount), so their counts are never doubled either;
//   - an entity present in the store takes only changes strictly newer
//     than its state (newest wins, and a change it already holds is not
//     re-applied);
//   - an entity absent from the store is folded again from the window's
//     events with exactly the live rules (domain.Apply), each event once.
//
// Replaying a window twice therefore changes nothing the second time.
type Replayer struct {
	store Store
	log   LogScanner
	now   func() time.Time
}

// NewReplayer returns a replayer writing into store; now nil is time.Now.
func NewReplayer(store Store, log LogScanner, now func() time.Time) *Replayer {
	if store == nil || log == nil {
		panic("projections: NewReplayer needs a store and a log scanner")
	}
	if now == nil {
		now = time.Now
	}
	return &Replayer{store: store, log: log, now: now}
}

// Replay applies the window req names and reports what changed.
func (r *Replayer) Replay(ctx context.Context, req ReplayRequest) (ReplayReport, error) {
	started := r.now()
	topics := req.Topics
	if len(topics) == 0 {
		topics = domain.EventTopics
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		return ReplayReport{}, fmt.Errorf("replay: from %s is not before to %s: %w",
			req.From.Format(time.RFC3339), req.To.Format(time.RFC3339), ErrEmptyWindow)
	}
	// A replay reads the log as it is now: a window from a time still to
	// come holds nothing yet.
	if req.From.After(started) {
		return ReplayReport{}, fmt.Errorf("replay: from %s is in the future (now %s): %w",
			req.From.Format(time.RFC3339), started.UTC().Format(time.RFC3339), ErrEmptyWindow)
	}
	rep := ReplayReport{IntegrationID: req.IntegrationID}
	for _, t := range req.Types {
		if !t.Known() {
			rep.UnknownTypes = append(rep.UnknownTypes, t)
		}
	}
	if !req.From.IsZero() {
		f := req.From.UTC()
		rep.From = &f
	}
	if !req.To.IsZero() {
		t := req.To.UTC()
		rep.To = &t
	}
	bounds, err := r.log.Bounds(ctx, topics, req.From, req.To)
	if err != nil {
		return rep, fmt.Errorf("replay: %w", err)
	}
	bounds = onlyIntegration(bounds, r.log, req.IntegrationID)
	st := newRepairState()
	for _, k := range req.Refold {
		st.refold[k] = true
	}
	// From the log start, over every type and topic, the replay sees each
	// entity's whole history in append order, so it can tell whether an
	// event it restores the audit row of was applied when a rebuild would
	// have applied it (stale or not), whatever the entity's stored state.
	st.shadowed = req.From.IsZero() && len(req.Types) == 0 && coversAll(topics, domain.EventTopics)
	batch := req.BatchSize
	if batch <= 0 {
		batch = 2000
	}
	err = r.log.Scan(ctx, ScanRequest{Bounds: bounds, IntegrationID: req.IntegrationID, Types: req.Types, BatchSize: batch},
		func(recs []ScannedRecord) error {
			return r.apply(ctx, recs, st, &rep)
		})
	if err == nil && len(st.refold) > 0 {
		err = r.settle(ctx, req, topics, bounds, st)
	}
	rep.Elapsed = r.now().Sub(started)
	if err != nil {
		return rep, fmt.Errorf("replay: %w", err)
	}
	return rep, nil
}

// Recount sets the hourly metrics rows named from the audit rows they
// count (Writes.Recount), in one transaction.
func (r *Replayer) Recount(ctx context.Context, rows []MetricsRow) error {
	if len(rows) == 0 {
		return nil
	}
	rows = sortedMetricsRows(slices.Clone(rows))
	return retryTransient(ctx, func() error {
		return r.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
			return tx.Save(ctx, Writes{Recount: rows})
		})
	})
}

// repairState is what a replay remembers across its batches: the entities
// it folds from scratch and the events it folded into them.
type repairState struct {
	owned map[domain.EntityKey]bool
	seen  map[EventKey]bool
	// shadowed replays keep in shadow, for every entity the scan reached,
	// what decides whether the log's fold applies its next change
	// (domain.Applies): the applied flag of each audit row restored.
	shadowed bool
	shadow   map[domain.EntityKey]shadowState
	// refold entities are folded in memory from nothing; state holds
	// their folded state so far, history their status changes.
	refold  map[domain.EntityKey]bool
	state   map[domain.EntityKey]domain.Entity
	history map[domain.EntityKey][]domain.StatusChange
}

// shadowState is the part of an entity's folded state domain.Applies
// reads: whether it exists, when it last changed, and whether that change
// deleted it.
type shadowState struct {
	exists, deleted bool
	at              time.Time
}

func newRepairState() *repairState {
	return &repairState{owned: map[domain.EntityKey]bool{}, seen: map[EventKey]bool{},
		refold: map[domain.EntityKey]bool{}, state: map[domain.EntityKey]domain.Entity{},
		history: map[domain.EntityKey][]domain.StatusChange{}, shadow: map[domain.EntityKey]shadowState{}}
}

// coversAll reports whether topics holds every one of all.
func coversAll(topics, all []string) bool {
	for _, t := range all {
		if !slices.Contains(topics, t) {
			return false
		}
	}
	return true
}

func (r *Replayer) apply(ctx context.Context, scanned []ScannedRecord, st *repairState, rep *ReplayReport) error {
	recs := make([]Record, 0, len(scanned))
	changes := make([]*domain.Change, 0, len(scanned))
	var q Query
	for _, s := range scanned {
		rep.Records++
		if s.Err != nil {
			rep.Unprojectable++
			continue
		}
		c, ok, err := domain.ChangeOf(s.Envelope)
		if err != nil {
			// The live path poisons it; a replay leaves its audit as is.
			rep.Unprojectable++
			continue
		}
		recs = append(recs, s.Record)
		if ok {
			changes = append(changes, &c)
			q.Entities = append(q.Entities, c.Key)
		} else {
			changes = append(changes, nil)
		}
		q.Events = append(q.Events, keyOf(s.Envelope))
	}
	if len(recs) == 0 {
		return nil
	}
	q.Events = uniq(q.Events)
	q.Entities = uniq(q.Entities)
	return retryTransient(ctx, func() error {
		var counts repairCounts
		var add *repairState
		err := r.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
			snap, err := tx.Load(ctx, q)
			if err != nil {
				return err
			}
			var w Writes
			w, add, counts = repairPlan(snap, recs, changes, st, r.now().UTC())
			if w.Empty() {
				return nil
			}
			return tx.Save(ctx, w)
		})
		if err != nil {
			return err
		}
		// Only a committed batch changes what the run remembers.
		for k := range add.owned {
			st.owned[k] = true
		}
		for k := range add.seen {
			st.seen[k] = true
		}
		for k, e := range add.state {
			st.state[k] = e
		}
		for k, h := range add.history {
			st.history[k] = append(st.history[k], h...)
		}
		maps.Copy(st.shadow, add.shadow)
		rep.Applied += counts.applied
		rep.Unchanged += counts.unchanged
		rep.AuditRestored += counts.audit
		return nil
	})
}

type repairCounts struct{ applied, unchanged, audit int64 }

// repairPlan is the pure core of a replay into live read models (see
// Replayer for the rules).
func repairPlan(snap Snapshot, recs []Record, changes []*domain.Change, st *repairState, now time.Time) (Writes, *repairState, repairCounts) {
	var w Writes
	var n repairCounts
	add := newRepairState()
	owned := func(k domain.EntityKey) bool { return st.owned[k] || add.owned[k] || st.refold[k] }
	seen := func(k EventKey) bool { return st.seen[k] || add.seen[k] }
	audit := make(map[EventKey]bool, len(recs))
	entities := make(map[domain.EntityKey]domain.Entity)
	dirty := map[domain.EntityKey]bool{}
	for i, r := range recs {
		key := keyOf(r.Envelope)
		_, stored := snap.Audit[key]
		writeAudit := !stored && !audit[key]
		var applied, shadowApplied *bool
		if c := changes[i]; c != nil && st.shadowed {
			last, ok := add.shadow[c.Key]
			if !ok {
				last = st.shadow[c.Key]
			}
			a := domain.Applies(domain.Entity{Exists: last.exists, UpdatedAt: last.at, Deleted: last.deleted}, *c)
			if a {
				add.shadow[c.Key] = shadowState{exists: true, at: c.At, deleted: c.Op == domain.OpDelete}
			}
			shadowApplied = &a
		}
		if c := changes[i]; c != nil {
			cur, ok := entities[c.Key]
			switch {
			case ok:
			case st.refold[c.Key]:
				cur = st.state[c.Key]
			default:
				cur = snap.Entities[c.Key]
			}
			if !cur.Exists && !st.refold[c.Key] {
				add.owned[c.Key] = true
			}
			fold := owned(c.Key)
			ok = false
			switch {
			case fold && seen(key):
			case fold:
				add.seen[key] = true
				next, eff := domain.Apply(cur, *c)
				if eff.Applied || eff.Earlier {
					entities[c.Key], dirty[c.Key] = next, true
				}
				if eff.Applied {
					ok = true
					switch {
					case eff.StatusChange == nil:
					case st.refold[c.Key]:
						// Written with the state, by settle.
						add.history[c.Key] = append(add.history[c.Key], *eff.StatusChange)
					default:
						w.StatusChanges = append(w.StatusChanges, *eff.StatusChange)
					}
				}
			case c.At.After(cur.UpdatedAt):
				next, eff := domain.Apply(cur, *c)
				if eff.Applied {
					ok = true
					entities[c.Key], dirty[c.Key] = next, true
					if eff.StatusChange != nil {
						w.StatusChanges = append(w.StatusChanges, *eff.StatusChange)
					}
				}
			}
			if ok {
				n.applied++
			} else {
				n.unchanged++
			}
			applied = &ok
		}
		if !writeAudit {
			continue
		}
		audit[key] = true
		n.audit++
		row := auditRow(r, now)
		row.New = true
		row.Applied = applied
		if shadowApplied != nil {
			row.Applied = shadowApplied
		}
		row.Status = StatusCompleted
		if changes[i] == nil {
			row.Status = StatusSkipped
		}
		ms := processingMs(now, row.ReceivedAt)
		row.ProcessedAt, row.ProcessingTimeMs = &now, &ms
		w.Recount = append(w.Recount, MetricsRow{IntegrationID: key.IntegrationID, EventType: r.Envelope.Type,
			Hour: row.ReceivedAt.UTC().Truncate(time.Hour)})
		w.Audit = append(w.Audit, row)
	}
	keys := make([]domain.EntityKey, 0, len(dirty))
	for k := range dirty {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareEntityKeys)
	for _, k := range keys {
		if st.refold[k] {
			// Written once, by settle.
			add.state[k] = entities[k]
			continue
		}
		w.Entities = append(w.Entities, entities[k])
	}
	// The restored rows' hours are counted again rather than added to:
	// the store cannot tell a row deleted behind the system's back (which
	// its hour still counts) from an event never projected.
	w.Recount = sortedMetricsRows(w.Recount)
	return w, add, n
}

// settle writes the refolded entities' states, and the refolded
// transactions' whole status histories in place of the stored ones, in one
// transaction that first locks their rows, then folds into them the
// records appended since the scan's end listing (which the live projectors
// may have applied meanwhile, on top of the rows being replaced): no event
// applied live is overwritten, none is folded twice, and an event appended
// later is applied by the live projectors on top of the state written
// here.
func (r *Replayer) settle(ctx context.Context, req ReplayRequest, topics []string, scanned Bounds, st *repairState) error {
	keys := slices.SortedFunc(maps.Keys(st.refold), compareEntityKeys)
	return retryTransient(ctx, func() error {
		return r.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
			locked, err := tx.Load(ctx, Query{Entities: keys})
			if err != nil {
				return err
			}
			now, err := r.log.Bounds(ctx, topics, time.Time{}, time.Time{})
			if err != nil {
				return err
			}
			since := onlyIntegration(now, r.log, req.IntegrationID).From(scanned.End)
			state := maps.Clone(st.state)
			history := map[domain.EntityKey][]domain.StatusChange{}
			for k, h := range st.history {
				history[k] = slices.Clone(h)
			}
			folded := map[EventKey]bool{}
			var w Writes
			err = r.log.Scan(ctx, ScanRequest{Bounds: since, IntegrationID: req.IntegrationID, Types: req.Types, BatchSize: 2000},
				func(recs []ScannedRecord) error {
					first := func(k EventKey) bool {
						if st.seen[k] || folded[k] {
							return false
						}
						folded[k] = true
						return true
					}
					for _, rec := range recs {
						foldRefold(rec, st.refold, first, state, history)
					}
					return nil
				})
			if err != nil {
				return err
			}
			for _, k := range keys {
				e, ok := state[k]
				if !ok || !e.Exists {
					continue
				}
				// A row this transaction locked holds nothing newer than
				// the fold, whatever its softpro_updated_at says (changed
				// behind the system's back): the fold replaces it. A row
				// inserted meanwhile keeps the newer state.
				_, held := locked.Entities[k]
				w.Entities = append(w.Entities, e)
				w.Overwrite = append(w.Overwrite, held)
				if k.Kind == domain.KindTransaction {
					w.ReplaceHistory = append(w.ReplaceHistory, k)
					w.StatusChanges = append(w.StatusChanges, history[k]...)
				}
			}
			if w.Empty() {
				return nil
			}
			return tx.Save(ctx, w)
		})
	})
}

// foldRefold folds rec into state and history when it changes an entity
// refold names and first reports its event not folded yet (marking it);
// folded is false otherwise.
func foldRefold(rec ScannedRecord, refold map[domain.EntityKey]bool, first func(EventKey) bool,
	state map[domain.EntityKey]domain.Entity, history map[domain.EntityKey][]domain.StatusChange) (eff domain.Effect, folded bool) {
	if rec.Err != nil {
		return eff, false
	}
	c, ok, err := domain.ChangeOf(rec.Envelope)
	if err != nil || !ok || !refold[c.Key] || !first(keyOf(rec.Envelope)) {
		return eff, false
	}
	next, eff := domain.Apply(state[c.Key], c)
	if eff.Applied || eff.Earlier {
		state[c.Key] = next
		if eff.StatusChange != nil {
			history[c.Key] = append(history[c.Key], *eff.StatusChange)
		}
	}
	return eff, true
}

// retryTransient runs fn until it succeeds, fails for a reason that is not
// transient, or five attempts have failed.
func retryTransient(ctx context.Context, fn func() error) error {
	delay := 200 * time.Millisecond
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = fn(); err == nil || !IsTransient(err) || errors.Is(err, context.Canceled) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
	return err
}

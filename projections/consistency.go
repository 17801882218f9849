package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// ConsistencyStore reads an integration's read models for validation, and
// files audit rows back under the type and time of receipt the log gives
// them.
type ConsistencyStore interface {
	// EntityRows returns every entity row of the integration, deleted ones
	// included.
	EntityRows(ctx context.Context, integrationID string) ([]domain.Entity, error)
	// AuditCounts counts the integration's audit rows per event type and
	// hour received (UTC), by status.
	AuditCounts(ctx context.Context, integrationID string) (map[AuditBucket]StatusCounts, error)
	// MetricsCounts returns the counts of the integration's hourly metrics
	// rows.
	MetricsCounts(ctx context.Context, integrationID string) (map[AuditBucket]StatusCounts, error)
	// AuditRows calls fn with every audit row of the integration, one at a
	// time, so that none need be held.
	AuditRows(ctx context.Context, integrationID string, fn func(AuditRef) error) error
	// RefileAudit sets each named audit row's type and time of receipt to
	// the ones given, and returns how many rows it changed.
	RefileAudit(ctx context.Context, integrationID string, refs []AuditRef) (int, error)
	// Snapshot calls fn with a store whose reads all see the database as
	// of one moment.
	Snapshot(ctx context.Context, fn func(ConsistencyStore) error) error
	// StatusChanges returns every status change stored for the
	// integration's transactions.
	StatusChanges(ctx context.Context, integrationID string) ([]domain.StatusChange, error)
	// AheadOf counts, per bucket, the integration's audit rows projected
	// from records at or past ends (appended after a log read that ended
	// there), and returns their event ids.
	AheadOf(ctx context.Context, integrationID string, ends map[Partition]int64) (map[AuditBucket]int64, map[string]bool, error)
}

// AuditRef is an audit row's event, type and time of receipt: what decides
// the bucket it counts in.
type AuditRef struct {
	EventID    string
	Type       domain.EventType
	ReceivedAt time.Time
}

func (a AuditRef) bucket() AuditBucket {
	return AuditBucket{a.Type, a.ReceivedAt.UTC().Truncate(time.Hour)}
}

func (a AuditRef) String() string {
	return fmt.Sprintf("%s received %s", a.Type, a.ReceivedAt.UTC().Format(time.RFC3339Nano))
}

// AuditBucket is one event type in one hour.
type AuditBucket struct {
	Type domain.EventType
	Hour time.Time
}

// StatusCounts counts events as the hourly metrics do: every event
// received; the completed, failed and skipped ones; the total, the largest
// and the histogram of the processing times of the completed ones.
type StatusCounts struct {
	Received, Completed, Failed, Skipped int64
	ProcessingMs, MaxProcessingMs        int64
	Latency                              LatencyHistogram
}

func (c StatusCounts) String() string {
	return fmt.Sprintf("received=%d completed=%d failed=%d skipped=%d processing_ms=%d max_processing_ms=%d latency_buckets=%v",
		c.Received, c.Completed, c.Failed, c.Skipped, c.ProcessingMs, c.MaxProcessingMs, c.Latency)
}

// Issue kinds of a consistency report, a wire contract.
const (
	IssueMissing    = "missing"
	IssueExtra      = "extra"
	IssueDiffers    = "differs"
	IssueAuditCount = "audit-count"
	// IssueAuditMisfiled: an audit row has another event type or time of
	// receipt than its event's first record on the log (edited behind the
	// system's back), whether or not that moved it to another hour.
	IssueAuditMisfiled = "audit-misfiled"
	// IssueMetrics: an hourly metrics row's counts differ from the audit
	// rows of its hour (which agree with the log).
	IssueMetrics = "metrics"
)

// Issue is one inconsistency between the log and the read models.
type Issue struct {
	Kind       string           `json:"kind"`
	EntityKind domain.Kind      `json:"entityKind,omitempty"`
	EntityID   string           `json:"entityId,omitempty"`
	Fields     []string         `json:"fields,omitempty"`
	EventType  domain.EventType `json:"eventType,omitempty"`
	Hour       *time.Time       `json:"hour,omitempty"`
	// EventID names an audit-misfiled issue's event.
	EventID string `json:"eventId,omitempty"`
	// Expected is what the log says, Actual what the read model holds.
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	// lost is, for an audit-count issue, how many audit rows fewer than
	// the log's events the bucket holds (0 when it holds more).
	lost int64
	// refile is, for an audit-misfiled issue, the row as the log has it.
	refile *AuditRef
}

// Key is the issue's entity.
func (i Issue) Key(integrationID string) domain.EntityKey {
	return domain.EntityKey{IntegrationID: integrationID, Kind: i.EntityKind, ID: i.EntityID}
}

// ConsistencyReport is the original system's report: a score from 0 to 100
// and the issues found.
type ConsistencyReport struct {
	IntegrationID string    `json:"integrationId"`
	Score         int       `json:"score"`
	CheckedAt     time.Time `json:"checkedAt"`
	// Events is how many distinct events of the integration the log holds.
	Events int64 `json:"events"`
	// Entities is how many entities the log and the read models name.
	Entities     int `json:"entities"`
	AuditBuckets int `json:"auditBuckets"`
	// MetricsBuckets is how many hourly metrics rows were compared with
	// the audit: those of the buckets whose audit rows agree with the log.
	MetricsBuckets int     `json:"metricsBuckets"`
	Issues         []Issue `json:"issues"`
}

// Validate folds each of the integration's entities from the log with the
// domain's Apply rules and compares the result with its read-model row,
// and compares the audit's counts per type and hour with the log's. The
// score is the share of entities and audit buckets that agree. Events are
// folded in the log scan's append order across topics, each (integration,
// event id) once, as a rebuild applies them (and the live projectors, one
// per topic, while no topic lags behind another); events that can never
// project are counted in the audit but change no entity.
func Validate(ctx context.Context, store ConsistencyStore, log LogScanner, integrationID string, topics []string) (ConsistencyReport, error) {
	if len(topics) == 0 {
		topics = domain.EventTopics
	}
	rep := ConsistencyReport{IntegrationID: integrationID, CheckedAt: time.Now().UTC(), Issues: []Issue{}}
	bounds, err := log.Bounds(ctx, topics, time.Time{}, time.Time{})
	if err != nil {
		return rep, fmt.Errorf("validate %s: %w", integrationID, err)
	}
	bounds = onlyIntegration(bounds, log, integrationID)
	// want folds each entity's changes in the scan's order (append order,
	// as a rebuild applies them) while the log is read: memory holds the
	// entities, not the events' data.
	want := map[domain.EntityKey]domain.Entity{}
	// history holds the status changes the fold records, per transaction.
	history := map[domain.EntityKey][]domain.StatusChange{}
	// firsts holds each event's first record as its audit row should have
	// it, a few dozen bytes an event.
	firsts := newFirstRecords()
	logCounts := map[AuditBucket]int64{}
	err = log.Scan(ctx, ScanRequest{Bounds: bounds, IntegrationID: integrationID, BatchSize: 2000}, func(recs []ScannedRecord) error {
		for _, r := range recs {
			if r.Err != nil {
				continue
			}
			first, isFirst := firsts.add(r.Envelope, r.Timestamp)
			if !isFirst {
				continue
			}
			c, ok, err := domain.ChangeOf(r.Envelope)
			logCounts[first.bucket()]++
			if err != nil {
				// Poisoned: its audit row says FAILED; a later copy (a
				// manual retry) cannot do better.
				continue
			}
			rep.Events++
			if !ok {
				continue
			}
			next, eff := domain.Apply(want[c.Key], c)
			if eff.Applied || eff.Earlier {
				want[c.Key] = next
			}
			if eff.Applied && eff.StatusChange != nil {
				history[c.Key] = append(history[c.Key], *eff.StatusChange)
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("validate %s: %w", integrationID, err)
	}
	// The read models as of one moment, without what was projected from
	// records appended after the log read ended: those are compared by
	// the next validation, not reported now.
	var rows []domain.Entity
	var changes []domain.StatusChange
	var audit, metrics map[AuditBucket]StatusCounts
	var aheadCounts map[AuditBucket]int64
	var ahead map[string]bool
	err = store.Snapshot(ctx, func(s ConsistencyStore) error {
		var err error
		if rows, err = s.EntityRows(ctx, integrationID); err != nil {
			return err
		}
		if changes, err = s.StatusChanges(ctx, integrationID); err != nil {
			return err
		}
		if audit, err = s.AuditCounts(ctx, integrationID); err != nil {
			return err
		}
		if metrics, err = s.MetricsCounts(ctx, integrationID); err != nil {
			return err
		}
		aheadCounts, ahead, err = s.AheadOf(ctx, integrationID, bounds.End)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("validate %s: %w", integrationID, err)
	}
	have := make(map[domain.EntityKey]domain.Entity, len(rows))
	for _, r := range rows {
		if ahead[r.LastEventID] {
			// Folded further than the log read: not compared now.
			delete(want, r.Key)
			continue
		}
		have[r.Key] = r
	}
	stored := map[domain.EntityKey][]domain.StatusChange{}
	for _, c := range changes {
		if !ahead[c.EventID] {
			stored[c.Key] = append(stored[c.Key], c)
		}
	}
	keys := make([]domain.EntityKey, 0, len(want)+len(have))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareEntityKeys)
	rep.Entities = len(keys)
	bad := 0
	for _, k := range keys {
		w, inLog := want[k]
		h, inDB := have[k]
		switch {
		case !inDB:
			rep.Issues = append(rep.Issues, Issue{Kind: IssueMissing, EntityKind: k.Kind, EntityID: k.ID, Expected: w.LastEventID})
		case !inLog:
			rep.Issues = append(rep.Issues, Issue{Kind: IssueExtra, EntityKind: k.Kind, EntityID: k.ID, Actual: h.LastEventID})
		default:
			fields, exp, act := entityDiff(w, h)
			if k.Kind == domain.KindTransaction {
				if e, a, differ := historyDiff(history[k], stored[k]); differ {
					fields, exp, act = append(fields, "status_history"), append(exp, e), append(act, a)
				}
			}
			if len(fields) == 0 {
				continue
			}
			rep.Issues = append(rep.Issues, Issue{Kind: IssueDiffers, EntityKind: k.Kind, EntityID: k.ID, Fields: fields,
				Expected: strings.Join(exp, "; "), Actual: strings.Join(act, "; ")})
		}
		bad++
	}
	// The audit rows of the records the log read covered.
	read := func(b AuditBucket) int64 { return audit[b].Received - aheadCounts[b] }
	buckets := make([]AuditBucket, 0, len(logCounts)+len(audit))
	for b := range logCounts {
		buckets = append(buckets, b)
	}
	for b := range audit {
		if _, ok := logCounts[b]; !ok {
			buckets = append(buckets, b)
		}
	}
	sortBuckets(buckets)
	rep.AuditBuckets = len(buckets)
	counted := map[AuditBucket]bool{}
	for _, b := range buckets {
		if logCounts[b] == read(b) {
			continue
		}
		h := b.Hour
		rep.Issues = append(rep.Issues, Issue{Kind: IssueAuditCount, EventType: b.Type, Hour: &h,
			Expected: fmt.Sprint(logCounts[b]), Actual: fmt.Sprint(read(b)), lost: max(logCounts[b]-read(b), 0)})
		bad++
		counted[b] = true
	}
	// Every audit row against its event's first record: a row moved to
	// another type or hour is the detail of two audit-count issues above;
	// one edited within its hour changes no count, and its bucket is
	// counted as disagreeing here.
	var misfiled []Issue
	err = store.AuditRows(ctx, integrationID, func(row AuditRef) error {
		if is, ok := misfiledAudit(row, firsts, ahead); ok {
			misfiled = append(misfiled, is)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("validate %s: %w", integrationID, err)
	}
	slices.SortFunc(misfiled, func(a, b Issue) int { return strings.Compare(a.EventID, b.EventID) })
	for _, is := range misfiled {
		b := is.refile.bucket()
		if !counted[b] {
			counted[b] = true
			bad++
		}
	}
	rep.Issues = append(rep.Issues, misfiled...)
	// The metrics rows count the audit rows: each is compared where the
	// audit agrees with the log (elsewhere the audit-count issue stands,
	// and restoring the audit rows recounts the row).
	for b := range metrics {
		if _, ok := audit[b]; !ok {
			if _, ok := logCounts[b]; !ok {
				buckets = append(buckets, b)
			}
		}
	}
	sortBuckets(buckets)
	for _, b := range buckets {
		if logCounts[b] != read(b) {
			continue
		}
		rep.MetricsBuckets++
		if metrics[b] == audit[b] {
			continue
		}
		h := b.Hour
		rep.Issues = append(rep.Issues, Issue{Kind: IssueMetrics, EventType: b.Type, Hour: &h,
			Expected: audit[b].String(), Actual: metrics[b].String()})
		bad++
	}
	rep.Score = 100
	if checked := rep.Entities + rep.AuditBuckets + rep.MetricsBuckets; checked > 0 {
		rep.Score = (checked - bad) * 100 / checked
	}
	return rep, nil
}

func sortBuckets(buckets []AuditBucket) {
	slices.SortFunc(buckets, func(a, b AuditBucket) int {
		if c := a.Hour.Compare(b.Hour); c != 0 {
			return c
		}
		return strings.Compare(string(a.Type), string(b.Type))
	})
}

// entityDiff names the fields in which the read-model row h differs from
// the folded state w, with both values.
func entityDiff(w, h domain.Entity) (fields, expected, actual []string) {
	add := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			fields = append(fields, name)
			expected = append(expected, fmt.Sprintf("%s=%v", name, a))
			actual = append(actual, fmt.Sprintf("%s=%v", name, b))
		}
	}
	add("deleted", w.Deleted, h.Deleted)
	add("deleted_at", microsPtr(w.DeletedAt), microsPtr(h.DeletedAt))
	add("softpro_updated_at", micros(w.UpdatedAt), micros(h.UpdatedAt))
	add("softpro_created_at", micros(w.CreatedAt), micros(h.CreatedAt))
	add("last_event_id", w.LastEventID, h.LastEventID)
	switch w.Key.Kind {
	case domain.KindTransaction:
		a, b := w.Transaction, h.Transaction
		add("file_number", a.FileNumber, b.FileNumber)
		add("status", a.Status, b.Status)
		add("property_address", a.PropertyAddress, b.PropertyAddress)
		add("closing_date", day(a.ClosingDate), day(b.ClosingDate))
		add("closed_at", microsPtr(a.ClosedAt), microsPtr(b.ClosedAt))
	case domain.KindContact:
		add("contact", w.Contact, h.Contact)
	case domain.KindDocument:
		add("document", w.Document, h.Document)
	case domain.KindTask:
		a, b := w.Task, h.Task
		add("transaction_id", a.TransactionID, b.TransactionID)
		add("title", a.Title, b.Title)
		add("status", a.Status, b.Status)
		add("assigned_to", a.AssignedTo, b.AssignedTo)
		add("due_date", microsPtr(a.DueDate), microsPtr(b.DueDate))
		add("completed_at", microsPtr(a.CompletedAt), microsPtr(b.CompletedAt))
	}
	if !sameJSON(w.Data, h.Data) {
		fields = append(fields, "payload")
		expected = append(expected, "payload="+string(w.Data))
		actual = append(actual, "payload="+string(h.Data))
	}
	return fields, expected, actual
}

func micros(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

func microsPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return micros(*t)
}

func day(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// historyDiff compares a transaction's status changes as the fold records
// them with the stored ones, by event: each side names the changes the
// other lacks or holds otherwise (at most five, then how many more).
func historyDiff(want, have []domain.StatusChange) (expected, actual string, differ bool) {
	if sameHistory(want, have) {
		return "", "", false
	}
	render := func(cs []domain.StatusChange) map[string]string {
		out := make(map[string]string, len(cs))
		for _, c := range cs {
			out[c.EventID] = fmt.Sprintf("%s %s→%s at %s", c.EventID, c.From, c.To, micros(c.At))
		}
		return out
	}
	w, h := render(want), render(have)
	only := func(a, b map[string]string) string {
		var out []string
		for id, line := range a {
			if b[id] != line {
				out = append(out, line)
			}
		}
		slices.Sort(out)
		n := len(out)
		if n > 5 {
			out = append(out[:5], fmt.Sprintf("%d more", n-5))
		}
		return fmt.Sprintf("status_history=%d changes [%s]", len(a), strings.Join(out, ", "))
	}
	return only(w, h), only(h, w), true
}

// sameHistory reports whether two lists hold the same status changes, by
// event, to the microsecond.
func sameHistory(want, have []domain.StatusChange) bool {
	if len(want) != len(have) {
		return false
	}
	byEvent := make(map[string]domain.StatusChange, len(have))
	for _, c := range have {
		byEvent[c.EventID] = c
	}
	for _, c := range want {
		h, ok := byEvent[c.EventID]
		if !ok || h.From != c.From || h.To != c.To || !h.At.Truncate(time.Microsecond).Equal(c.At.Truncate(time.Microsecond)) {
			return false
		}
	}
	return len(byEvent) == len(want)
}

// sameJSON reports whether two JSON documents hold the same value: keys
// in any order, numbers by their exact decimal value (jsonb writes 1e2 as
// 100 and keeps numbers beyond float64's range, such as 1e400).
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	x, errX := decodeNumbers(a)
	y, errY := decodeNumbers(b)
	return errX == nil && errY == nil && sameValue(x, y)
}

func decodeNumbers(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// sameValue compares values decoded by decodeNumbers.
func sameValue(x, y any) bool {
	switch x := x.(type) {
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := y.([]any)
		return ok && slices.EqualFunc(x, y, sameValue)
	case json.Number:
		y, ok := y.(json.Number)
		return ok && sameNumber(string(x), string(y))
	default:
		return x == y
	}
}

// sameNumber reports whether two JSON numbers have the same decimal value
// (exact, whatever their size).
func sameNumber(a, b string) bool {
	if a == b {
		return true
	}
	x, okA := new(big.Rat).SetString(a)
	y, okB := new(big.Rat).SetString(b)
	return okA && okB && x.Cmp(y) == 0
}

// misfiledAudit says whether the audit row differs in type or time of
// receipt from its event's first record on the log (only in the hour for
// a record without a time of receipt), and names it. Events the log read
// did not cover (ahead, or not on the log) are left out.
func misfiledAudit(row AuditRef, firsts *firstRecords, ahead map[string]bool) (Issue, bool) {
	want, loose, ok := firsts.get(row.EventID)
	if !ok || ahead[row.EventID] {
		return Issue{}, false
	}
	if want.Type == row.Type && (want.ReceivedAt.Equal(row.ReceivedAt) || loose && want.bucket() == row.bucket()) {
		return Issue{}, false
	}
	h := want.bucket().Hour
	return Issue{Kind: IssueAuditMisfiled, EventID: row.EventID, EventType: want.Type, Hour: &h,
		Expected: want.String(), Actual: row.String(), refile: &want}, true
}

// firstRecords holds, for each event of a log read, its first record's
// type and time of receipt, keyed by a 128-bit hash of the event id: about
// 40 bytes an event where the ids themselves would take several times that
// (two distinct ids share a key with a chance of about n²/2¹²⁹).
type firstRecords struct {
	seeds [2]maphash.Seed
	byKey map[[2]uint64]firstRecord
	// types interns the event types (index in firstRecord.typ).
	types   []domain.EventType
	typeIdx map[domain.EventType]uint16
}

type firstRecord struct {
	receivedAt int64 // µs since the epoch, UTC
	typ        uint16
	// loose: the record had no time of receipt; its audit row took the
	// time processing started, so only the hour is compared.
	loose bool
}

func newFirstRecords() *firstRecords {
	return &firstRecords{
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		byKey:   map[[2]uint64]firstRecord{},
		typeIdx: map[domain.EventType]uint16{},
	}
}

func (f *firstRecords) key(eventID string) [2]uint64 {
	return [2]uint64{maphash.String(f.seeds[0], eventID), maphash.String(f.seeds[1], eventID)}
}

// add keeps env as its event's first record unless an earlier one was
// kept, and returns the record as its audit row should have it. A record
// without a time of receipt stands in with its log timestamp (ts).
func (f *firstRecords) add(env domain.Envelope, ts time.Time) (AuditRef, bool) {
	k := f.key(env.EventID)
	if _, seen := f.byKey[k]; seen {
		return AuditRef{}, false
	}
	received, loose := env.ReceivedAt, false
	if received.IsZero() {
		received, loose = ts, true
	}
	typ, ok := f.typeIdx[env.Type]
	if !ok {
		typ = uint16(len(f.types))
		f.types = append(f.types, env.Type)
		f.typeIdx[env.Type] = typ
	}
	ref := AuditRef{EventID: env.EventID, Type: env.Type, ReceivedAt: received.UTC().Truncate(time.Microsecond)}
	f.byKey[k] = firstRecord{receivedAt: ref.ReceivedAt.UnixMicro(), typ: typ, loose: loose}
	return ref, true
}

// get returns the event's first record, and whether it had no time of
// receipt.
func (f *firstRecords) get(eventID string) (ref AuditRef, loose, ok bool) {
	r, ok := f.byKey[f.key(eventID)]
	if !ok {
		return AuditRef{}, false, false
	}
	return AuditRef{EventID: eventID, Type: f.types[r.typ], ReceivedAt: time.UnixMicro(r.receivedAt).UTC()}, r.loose, true
}

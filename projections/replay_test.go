package projections

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// fakeLog is a LogScanner over records held in memory; every integration
// lives in partition 0.
type fakeLog struct {
	recs []ScannedRecord
	// beforeScan, when set, runs once, at the start of the next Scan
	// (after its bounds were listed).
	beforeScan func()
}

func (f *fakeLog) Bounds(_ context.Context, topics []string, from, to time.Time) (Bounds, error) {
	b := Bounds{Start: map[Partition]int64{}, End: map[Partition]int64{}}
	for _, t := range topics {
		p := Partition{Topic: t}
		b.Start[p], b.End[p] = 0, 0
		for _, r := range f.recs {
			if r.Topic != t {
				continue
			}
			if !from.IsZero() && r.Timestamp.Before(from) {
				b.Start[p] = r.Offset + 1
			}
			if to.IsZero() || r.Timestamp.Before(to) {
				b.End[p] = r.Offset + 1
			}
		}
	}
	return b, nil
}

func (f *fakeLog) Scan(_ context.Context, req ScanRequest, fn func([]ScannedRecord) error) error {
	if f.beforeScan != nil {
		hook := f.beforeScan
		f.beforeScan = nil
		hook()
	}
	for _, r := range f.recs {
		if r.Offset < req.Start[r.Partition] || r.Offset >= req.End[r.Partition] {
			continue
		}
		if req.IntegrationID != "" && r.Envelope.IntegrationID != req.IntegrationID {
			continue
		}
		if err := fn([]ScannedRecord{r}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeLog) PartitionOf(string, int) int32 { return 0 }

func (f *fakeLog) add(typ domain.EventType, id string, at time.Time, data string) {
	off := int64(0)
	for _, r := range f.recs {
		if r.Topic == typ.Topic() {
			off++
		}
	}
	f.recs = append(f.recs, ScannedRecord{
		Record: Record{Partition: Partition{Topic: typ.Topic()}, Offset: off, Envelope: domain.Envelope{
			Schema: domain.SchemaV1, EventID: id, IntegrationID: "int_a", Type: typ, OccurredAt: at, ReceivedAt: at,
			Source: domain.SourceWebhook, Payload: json.RawMessage(fmt.Sprintf(`{"id":%q,"data":%s}`, id, data)),
		}, Timestamp: at},
	})
}

// memStore is a Store over maps, enough for the replayer's rules.
type memStore struct {
	audit    map[EventKey]AuditRow
	entities map[domain.EntityKey]domain.Entity
	changes  map[string]bool
	// history holds the status changes in the order written.
	history []domain.StatusChange
	// metrics and recounts hold the metrics writes in the order made.
	metrics  []MetricsDelta
	recounts []MetricsRow
}

func newMemStore() *memStore {
	return &memStore{audit: map[EventKey]AuditRow{}, entities: map[domain.EntityKey]domain.Entity{}, changes: map[string]bool{}}
}

func (m *memStore) InTx(ctx context.Context, fn func(context.Context, Tx) error) error {
	return fn(ctx, m)
}

func (m *memStore) Load(_ context.Context, q Query) (Snapshot, error) {
	s := Snapshot{Checkpoints: map[Partition]int64{}, Audit: map[EventKey]AuditRow{}, Entities: map[domain.EntityKey]domain.Entity{}}
	for _, k := range q.Events {
		if a, ok := m.audit[k]; ok {
			s.Audit[k] = a
		}
	}
	for _, k := range q.Entities {
		if e, ok := m.entities[k]; ok {
			s.Entities[k] = e
		}
	}
	return s, nil
}

func (m *memStore) Save(_ context.Context, w Writes) error {
	for _, a := range w.Audit {
		m.audit[EventKey{a.IntegrationID, a.EventID}] = a
	}
	for i, e := range w.Entities {
		// The SQL upsert's guard: an older state never replaces a newer,
		// unless the write is marked Overwrite.
		over := i < len(w.Overwrite) && w.Overwrite[i]
		if cur, ok := m.entities[e.Key]; ok && !over && cur.UpdatedAt.After(e.UpdatedAt) {
			continue
		}
		m.entities[e.Key] = e
	}
	if len(w.ReplaceHistory) > 0 {
		kept := m.history[:0]
		for _, c := range m.history {
			if slices.Contains(w.ReplaceHistory, c.Key) {
				delete(m.changes, c.EventID)
			} else {
				kept = append(kept, c)
			}
		}
		m.history = kept
	}
	m.metrics = append(m.metrics, w.Metrics...)
	m.recounts = append(m.recounts, w.Recount...)
	for _, c := range w.StatusChanges {
		// The table's (integration, event id) key: a second insert is
		// a no-op.
		if !m.changes[c.EventID] {
			m.changes[c.EventID] = true
			m.history = append(m.history, c)
		}
	}
	return nil
}

func TestReplayRestoresAndIsIdempotent(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", t0, `{"id":"txn_1","status":"open","file_number":"F-1"}`)
	log.add(domain.TransactionUpdated, "e2", t0, `{"id":"txn_1","status":"in_progress"}`) // same second as e1
	log.add(domain.ContactCreated, "e3", t0.Add(time.Second), `{"id":"con_1","email":"a@b.c"}`)
	log.add(domain.TransactionStatusChanged, "e4", t0.Add(2*time.Second), `{"id":"txn_1","status":"closed"}`)

	// The live rules, folded once: what the read models hold.
	want := map[domain.EntityKey]domain.Entity{}
	for _, r := range log.recs {
		c, _, _ := domain.ChangeOf(r.Envelope)
		next, _ := domain.Apply(want[c.Key], c)
		want[c.Key] = next
	}
	txn := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"}

	tests := []struct {
		name        string
		prepare     func(m *memStore)
		req         ReplayRequest
		wantApplied int64
		wantAudit   int64
	}{
		{name: "empty store folds everything", prepare: func(*memStore) {}, wantApplied: 4, wantAudit: 4},
		{name: "intact store changes nothing", prepare: func(m *memStore) {
			for k, e := range want {
				m.entities[k] = e
			}
			for _, r := range log.recs {
				m.audit[keyOf(r.Envelope)] = AuditRow{Status: StatusCompleted}
			}
		}, wantApplied: 0, wantAudit: 0},
		{name: "deleted row is folded again from its events", prepare: func(m *memStore) {
			for k, e := range want {
				if k != txn {
					m.entities[k] = e
				}
			}
			for _, r := range log.recs {
				m.audit[keyOf(r.Envelope)] = AuditRow{Status: StatusCompleted}
			}
		}, wantApplied: 3, wantAudit: 0},
		{name: "edited row is refolded when named", prepare: func(m *memStore) {
			for k, e := range want {
				m.entities[k] = e
			}
			edited := want[txn]
			edited.Transaction.Status = "tampered"
			m.entities[txn] = edited
			for _, r := range log.recs {
				m.audit[keyOf(r.Envelope)] = AuditRow{Status: StatusCompleted}
			}
		}, req: ReplayRequest{Refold: []domain.EntityKey{txn}}, wantApplied: 3, wantAudit: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMemStore()
			tt.prepare(m)
			r := NewReplayer(m, log, nil)
			req := tt.req
			req.IntegrationID = "int_a"
			rep, err := r.Replay(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Applied != tt.wantApplied || rep.AuditRestored != tt.wantAudit || rep.Records != 4 {
				t.Fatalf("report %+v, want applied %d, audit %d", rep, tt.wantApplied, tt.wantAudit)
			}
			for k, w := range want {
				if got := m.entities[k]; got.Transaction != w.Transaction || got.Contact != w.Contact || got.LastEventID != w.LastEventID {
					t.Fatalf("%v: got %+v, want %+v", k, got, w)
				}
			}
			// Again: nothing changes.
			rep, err = r.Replay(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Applied != 0 && len(req.Refold) == 0 || rep.AuditRestored != 0 {
				t.Fatalf("second replay: %+v", rep)
			}
			if got := m.entities[txn].Transaction.Status; got != "closed" {
				t.Fatalf("status after second replay %q", got)
			}
		})
	}
}

func TestBoundsFrom(t *testing.T) {
	t.Parallel()
	p0, p1, p2 := Partition{"t", 0}, Partition{"t", 1}, Partition{"t", 2}
	b := Bounds{Start: map[Partition]int64{p0: 0, p1: 5, p2: 0}, End: map[Partition]int64{p0: 10, p1: 20, p2: 3}}
	got := b.From(map[Partition]int64{p0: 4, p2: 9})
	if got.Start[p0] != 4 || got.Start[p1] != 5 || got.Start[p2] != 3 {
		t.Fatalf("starts %v", got.Start)
	}
	if n := got.Records(); n != 6+15 {
		t.Fatalf("records %d, want 21", n)
	}
}

func TestReplayRecountsTheHoursOfTheAuditRowsItRestores(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 59, 0, 0, time.UTC)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", t0, `{"id":"txn_1","status":"open"}`)
	log.add(domain.TransactionCreated, "e2", t0.Add(2*time.Minute), `{"id":"txn_2","status":"open"}`)
	log.add(domain.ContactCreated, "e3", t0.Add(3*time.Minute), `{"id":"con_1"}`)
	log.add(domain.TransactionCreated, "e4", t0.Add(4*time.Minute), `{"id":"txn_3","status":"open"}`)
	m := newMemStore()
	// e4's audit row is there; the others' are not, whether they were
	// never projected or deleted behind the system's back.
	m.audit[keyOf(log.recs[3].Envelope)] = AuditRow{Status: StatusCompleted}
	rep, err := NewReplayer(m, log, nil).Replay(context.Background(), ReplayRequest{IntegrationID: "int_a", BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AuditRestored != 3 {
		t.Fatalf("restored %d audit rows, want 3", rep.AuditRestored)
	}
	// The hours of e1, e2 and e3, each once; no deltas.
	slices.SortFunc(m.recounts, func(a, b MetricsRow) int {
		return cmp.Or(cmp.Compare(a.EventType, b.EventType), a.Hour.Compare(b.Hour))
	})
	want := []MetricsRow{
		{IntegrationID: "int_a", EventType: domain.ContactCreated, Hour: t0.Add(time.Minute)},
		{IntegrationID: "int_a", EventType: domain.TransactionCreated, Hour: t0.Truncate(time.Hour)},
		{IntegrationID: "int_a", EventType: domain.TransactionCreated, Hour: t0.Add(time.Minute)},
	}
	if len(m.metrics) != 0 || !slices.Equal(m.recounts, want) {
		t.Fatalf("metrics deltas %+v, recounts %+v; want no deltas and recounts %+v", m.metrics, m.recounts, want)
	}
	// Nothing restored, nothing recounted.
	m.recounts = nil
	if _, err := NewReplayer(m, log, nil).Replay(context.Background(), ReplayRequest{IntegrationID: "int_a"}); err != nil {
		t.Fatal(err)
	}
	if len(m.metrics) != 0 || len(m.recounts) != 0 {
		t.Fatalf("second replay: metrics deltas %+v, recounts %+v", m.metrics, m.recounts)
	}
}

func TestReplayFromTheStartRestoresAuditRowsWithTheirAppliedFlag(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", t0.Add(time.Second), `{"id":"txn_1","status":"open"}`)
	log.add(domain.TransactionUpdated, "e2", t0.Add(3*time.Second), `{"id":"txn_1","status":"closing"}`)
	log.add(domain.TransactionUpdated, "e3", t0.Add(2*time.Second), `{"id":"txn_1","status":"late"}`) // stale when it came
	m := newMemStore()
	var folded domain.Entity
	for _, r := range log.recs {
		c, _, _ := domain.ChangeOf(r.Envelope)
		folded, _ = domain.Apply(folded, c)
	}
	m.entities[folded.Key] = folded
	// e1's and e3's audit rows were deleted behind the system's back.
	m.audit[keyOf(log.recs[1].Envelope)] = AuditRow{Status: StatusCompleted}
	rep, err := NewReplayer(m, log, nil).Replay(context.Background(), ReplayRequest{IntegrationID: "int_a"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AuditRestored != 2 || rep.Applied != 0 {
		t.Fatalf("report %+v, want 2 audit rows restored and nothing applied", rep)
	}
	// e1 created the entity when it came, though the row is newer now.
	for id, want := range map[string]bool{"e1": true, "e3": false} {
		if a := m.audit[EventKey{"int_a", id}].Applied; a == nil || *a != want {
			t.Errorf("%s restored with applied %v, want %v", id, a, want)
		}
	}
}

// The applied flag follows every rule of domain.Apply, a tie over a delete
// included: a change of the delete's own second after it is not applied.
func TestReplayFromTheStartRestoresTheAppliedFlagOfATieOverADelete(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	log.add(domain.ContactCreated, "e1", t0, `{"id":"c1","email":"a@x"}`)
	log.add(domain.ContactDeleted, "e2", t0.Add(time.Second), `{"id":"c1"}`)
	log.add(domain.ContactUpdated, "e3", t0.Add(time.Second), `{"id":"c1","email":"b@x"}`)
	log.add(domain.ContactUpdated, "e4", t0.Add(2*time.Second), `{"id":"c1","email":"c@x"}`)
	m := newMemStore()
	var folded domain.Entity
	var want []bool
	for _, r := range log.recs {
		c, _, _ := domain.ChangeOf(r.Envelope)
		var eff domain.Effect
		folded, eff = domain.Apply(folded, c)
		want = append(want, eff.Applied)
	}
	if fmt.Sprint(want) != "[true true false true]" {
		t.Fatalf("the fold applied %v", want)
	}
	m.entities[folded.Key] = folded
	if _, err := NewReplayer(m, log, nil).Replay(context.Background(), ReplayRequest{IntegrationID: "int_a"}); err != nil {
		t.Fatal(err)
	}
	for i, r := range log.recs {
		if a := m.audit[keyOf(r.Envelope)].Applied; a == nil || *a != want[i] {
			t.Errorf("%s restored with applied %v, want %v", r.Envelope.EventID, fmtApplied(a), want[i])
		}
	}
}

func fmtApplied(a *bool) string {
	if a == nil {
		return "nil"
	}
	return fmt.Sprint(*a)
}

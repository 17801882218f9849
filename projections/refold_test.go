package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// The projector names an entity for a refold only when a retried event
// reaches it while it holds another event's state.
func TestProjectorNamesEntitiesRetriedEventsReachOutOfOrder(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	log.add(domain.TransactionStatusChanged, "e_status", t0, `{"id":"txn_1","status":"closing"}`)
	log.add(domain.TransactionCreated, "e_created", t0, `{"id":"txn_1","status":"open","file_number":"F-1"}`)
	log.add(domain.TransactionCreated, "e_other", t0, `{"id":"txn_2","status":"open"}`)
	txn1 := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"}
	record := func(i int, source domain.Source) Record {
		r := log.recs[i].Record
		r.Envelope.Source = source
		return r
	}
	tests := []struct {
		name    string
		applied []int // records applied before, as the live path did
		rec     Record
		want    []domain.EntityKey
	}{
		{name: "retry onto another event's state", applied: []int{0}, rec: record(1, domain.SourceRetry), want: []domain.EntityKey{txn1}},
		{name: "webhook onto another event's state", applied: []int{0}, rec: record(1, domain.SourceWebhook)},
		{name: "retry creating its entity", rec: record(2, domain.SourceRetry)},
		{name: "retry onto its own state", applied: []int{1}, rec: func() Record {
			r := record(1, domain.SourceRetry)
			r.Offset = 9
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMemStore()
			live := NewProjector("p", m, nil)
			for _, i := range tt.applied {
				if _, err := live.Apply(context.Background(), log.recs[i].Record); err != nil {
					t.Fatal(err)
				}
			}
			var got []domain.EntityKey
			p := live.WithRefold(func(rs []Refold) {
				for _, r := range rs {
					got = append(got, r.Key)
				}
			})
			// A claimed retry's audit row is RECEIVED again.
			m.audit[keyOf(tt.rec.Envelope)] = AuditRow{IntegrationID: "int_a", EventID: tt.rec.Envelope.EventID, Status: StatusReceived}
			if _, err := p.Apply(context.Background(), tt.rec); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || len(got) > 0 && got[0] != tt.want[0] {
				t.Fatalf("named %v, want %v", got, tt.want)
			}
		})
	}
}

// The projector names an entity for a refold when a record reaches it
// after an event of another topic, appended after the record, changed it:
// the two were projected against append order. Where the audit row has no
// append time, a receipt after the record's append tells the same.
func TestProjectorNamesEntitiesOvertakenAcrossTopics(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	txn1 := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"}
	stored := domain.Entity{Key: txn1, Exists: true, CreatedAt: t0, UpdatedAt: t0, LastEventID: "e_webhook",
		Transaction: domain.TransactionFields{Status: "closing"}}
	// The row was last changed by a webhook received at t0+10s.
	lastByWebhook := map[domain.EntityKey]LastChange{txn1: {Topic: domain.TopicTransactions, ReceivedAt: t0.Add(10 * time.Second)}}
	lastAppended := func(at time.Time) map[domain.EntityKey]LastChange {
		return map[domain.EntityKey]LastChange{txn1: {Topic: domain.TopicTransactions, AppendedAt: at, ReceivedAt: t0.Add(10 * time.Second)}}
	}
	snapshot := func(syncAppended time.Time, topic string) Record {
		typ, payload := domain.TransactionSynced, `{"id":"txn_1","file_number":"F-1"}`
		if topic == domain.TopicTransactions {
			typ, payload = domain.TransactionUpdated, `{"id":"e_snap","data":{"id":"txn_1","file_number":"F-1"}}`
		}
		return Record{Partition: Partition{Topic: topic}, Offset: 3, Timestamp: syncAppended, Envelope: domain.Envelope{
			Schema: domain.SchemaV1, EventID: "e_snap", IntegrationID: "int_a", Type: typ, OccurredAt: t0.Add(-time.Hour),
			ReceivedAt: syncAppended, Source: domain.SourceSync, Payload: json.RawMessage(payload)}}
	}
	tests := []struct {
		name  string
		rec   Record
		last  map[domain.EntityKey]LastChange
		named bool
	}{
		{name: "sync record appended before the webhook was received", rec: snapshot(t0.Add(5*time.Second), domain.TopicSync), last: lastByWebhook, named: true},
		{name: "sync record appended after it", rec: snapshot(t0.Add(11*time.Second), domain.TopicSync), last: lastByWebhook},
		{name: "record of the same topic", rec: snapshot(t0.Add(5*time.Second), domain.TopicTransactions), last: lastByWebhook},
		{name: "record without a timestamp", rec: snapshot(time.Time{}, domain.TopicSync), last: lastByWebhook},
		{name: "row whose last change is unknown", rec: snapshot(t0.Add(5*time.Second), domain.TopicSync)},
		// The webhook was received at t0+10s and appended at t0+10.004s.
		{name: "sync record appended between the webhook's receipt and its append", rec: snapshot(t0.Add(10*time.Second+2*time.Millisecond), domain.TopicSync),
			last: lastAppended(t0.Add(10*time.Second + 4*time.Millisecond)), named: true},
		{name: "sync record appended after the webhook's append", rec: snapshot(t0.Add(10*time.Second+5*time.Millisecond), domain.TopicSync),
			last: lastAppended(t0.Add(10*time.Second + 4*time.Millisecond))},
		// Same millisecond: the merge puts "softpro.sync" before
		// "softpro.transactions", so the sync record came first.
		{name: "sync record appended in the webhook's millisecond", rec: snapshot(t0.Add(10*time.Second+4*time.Millisecond), domain.TopicSync),
			last: lastAppended(t0.Add(10*time.Second + 4*time.Millisecond)), named: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok, err := domain.ChangeOf(tt.rec.Envelope)
			if err != nil || !ok {
				t.Fatalf("change: %v %v", ok, err)
			}
			snap := Snapshot{Checkpoints: map[Partition]int64{}, Audit: map[EventKey]AuditRow{},
				Entities: map[domain.EntityKey]domain.Entity{txn1: stored}, LastChanges: tt.last}
			_, outcomes, named := plan("p", snap, []Record{tt.rec}, []*domain.Change{&c}, t0.Add(time.Minute))
			if outcomes[0] != OutcomeStale {
				t.Fatalf("outcome %s, want stale", outcomes[0])
			}
			if got := len(named) == 1 && named[0].Key == txn1; got != tt.named || len(named) > 1 {
				t.Fatalf("named %v, want named %v", named, tt.named)
			}
			// From the snapshot's time, older than the row's creation.
			if tt.named && !named[0].Created.Equal(t0.Add(-time.Hour)) {
				t.Fatalf("named with creation time %s, want %s", named[0].Created, t0.Add(-time.Hour))
			}
		})
	}
}

// failingStore fails its first transactions, then is a memStore.
type failingStore struct {
	*memStore
	mu    sync.Mutex
	fails int
}

func (f *failingStore) InTx(ctx context.Context, fn func(context.Context, Tx) error) error {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return errors.New("store refused")
	}
	return f.memStore.InTx(ctx, fn)
}

// Entities handed to the refolder are folded again from the log with
// their events at their first positions, one integration at a time, and
// a failed refold is tried again.
func TestRefolderFoldsQueuedEntitiesAgainAndRetries(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log, txn1 := createdThenClosing(t0)

	m := newMemStore()
	for _, r := range log.recs {
		m.audit[keyOf(r.Envelope)] = AuditRow{Status: StatusCompleted}
	}
	// The live row and history after a retry of e_created: applied on top
	// of e_status.
	m.entities[txn1] = domain.Entity{Key: txn1, Exists: true, CreatedAt: t0, UpdatedAt: t0, LastEventID: "e_created",
		Transaction: domain.TransactionFields{Status: "open", FileNumber: "F-1"}}
	if err := m.Save(context.Background(), Writes{StatusChanges: []domain.StatusChange{
		{Key: txn1, From: "", To: "closing", At: t0, EventID: "e_status"},
		{Key: txn1, From: "closing", To: "open", At: t0, EventID: "e_created"},
	}}); err != nil {
		t.Fatal(err)
	}

	results := make(chan RefoldResult, 4)
	f := NewRefolder(NewReplayer(&failingStore{memStore: m, fails: 1}, log, nil), []string{domain.TopicTransactions},
		func(r RefoldResult) { results <- r })
	f.retryDelay = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	f.Add([]Refold{{Key: txn1, Created: t0.Add(time.Hour)}, {Key: txn1, Created: t0}})

	next := func() RefoldResult {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no refold within 5 s")
			return RefoldResult{}
		}
	}
	first := next()
	if first.Err == nil || first.IntegrationID != "int_a" || len(first.Entities) != 1 {
		t.Fatalf("first refold %+v, want the store's error for txn_1 alone", first)
	}
	second := next()
	if second.Err != nil || len(second.Entities) != 1 || second.Entities[0] != txn1 || second.Replay.Records != 2 {
		t.Fatalf("second refold %+v, want txn_1 folded from 2 records", second)
	}
	// From the earliest creation time named, less the clock margin.
	if from := second.Replay.From; from == nil || !from.Equal(t0.Add(-refoldClockMargin)) {
		t.Fatalf("second refold read from %v, want %s", from, t0.Add(-refoldClockMargin))
	}
	got := m.entities[txn1]
	if got.Transaction.Status != "closing" || got.Transaction.FileNumber != "F-1" || got.LastEventID != "e_status" {
		t.Fatalf("refolded %+v, want status closing, file F-1, last event e_status", got)
	}
	if h := historyOf(m); h != "open>closing:e_status" {
		t.Fatalf("status history %s, want open>closing:e_status", h)
	}
	cancel()
	<-done
	select {
	case r := <-results:
		t.Fatalf("unexpected refold %+v", r)
	default:
	}
}

// An event the live projector applies while a refold reads the log is not
// lost when the refold writes the entity, even when it ties with the
// refold's last event: the refold locks the row, then folds in what was
// appended since it listed the log's end.
func TestRefoldKeepsEventsAppliedLiveDuringItsScan(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	refolds := map[string]func(*Replayer, domain.EntityKey) error{
		"replay": func(r *Replayer, k domain.EntityKey) error {
			_, err := r.Replay(context.Background(), ReplayRequest{IntegrationID: "int_a", Refold: []domain.EntityKey{k}})
			return err
		},
		"refold": func(r *Replayer, k domain.EntityKey) error {
			_, err := r.Refold(context.Background(), "int_a", nil, []domain.EntityKey{k}, t0.Add(-refoldClockMargin))
			return err
		},
	}
	for name, refold := range refolds {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			log, txn1 := createdThenClosing(t0)
			m := newMemStore()
			live := NewProjector("p", m, nil)
			for _, r := range log.recs {
				if _, err := live.Apply(context.Background(), r.Record); err != nil {
					t.Fatal(err)
				}
			}
			// The row edited behind the system's back, then refolded; after
			// the refold listed the log's end, and before it reads the
			// entity's records, an update of the same second is appended
			// and projected live.
			edited := m.entities[txn1]
			edited.Transaction.FileNumber = "tampered"
			m.entities[txn1] = edited
			log.beforeScan = func() {
				log.add(domain.TransactionUpdated, "e_updated", t0, `{"id":"txn_1","property_address":"1 Main St"}`)
				if _, err := live.Apply(context.Background(), log.recs[2].Record); err != nil {
					t.Error(err)
				}
			}
			if err := refold(NewReplayer(m, log, nil), txn1); err != nil {
				t.Fatal(err)
			}
			got := m.entities[txn1].Transaction
			if got.FileNumber != "F-1" || got.Status != "closing" || got.PropertyAddress != "1 Main St" || m.entities[txn1].LastEventID != "e_updated" {
				t.Fatalf("after the refold: %+v, last event %s; want F-1, closing, 1 Main St, e_updated", got, m.entities[txn1].LastEventID)
			}
		})
	}
}

// A refold from a time reads only the records appended since, writes
// nothing for the other entities it reads, and folds its entities as a
// fold of the whole log does; a time still to come reads the whole log.
func TestRefoldFromATimeReadsTheLogSinceThen(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	for i := range 5 {
		at := t0.Add(-time.Duration(30-i) * 24 * time.Hour)
		log.add(domain.TransactionCreated, fmt.Sprintf("e_old_%d", i), at, fmt.Sprintf(`{"id":"txn_old_%d","status":"open"}`, i))
	}
	log.add(domain.TransactionCreated, "e_created", t0, `{"id":"txn_1","status":"open","file_number":"F-1"}`)
	log.add(domain.TransactionCreated, "e_other", t0, `{"id":"txn_2","status":"open"}`)
	log.add(domain.TransactionStatusChanged, "e_status", t0.Add(time.Minute), `{"id":"txn_1","status":"closing"}`)
	txn1 := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"}
	for _, tt := range []struct {
		name    string
		from    time.Time
		records int64
	}{
		{name: "from before the creation", from: t0.Add(-refoldClockMargin), records: 3},
		{name: "from the log start", records: 8},
		{name: "from a time to come", from: time.Now().Add(time.Hour), records: 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMemStore()
			rep, err := NewReplayer(m, log, nil).Refold(context.Background(), "int_a", []string{domain.TopicTransactions}, []domain.EntityKey{txn1}, tt.from)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Records != tt.records || rep.Applied != 2 {
				t.Fatalf("read %d records, applied %d; want %d and 2", rep.Records, rep.Applied, tt.records)
			}
			got := m.entities[txn1]
			if len(m.entities) != 1 || got.Transaction.Status != "closing" || got.Transaction.FileNumber != "F-1" || !got.CreatedAt.Equal(t0) {
				t.Fatalf("entities %+v, want txn_1 alone, closing, F-1, created %s", m.entities, t0)
			}
			if h := historyOf(m); h != "open>closing:e_status" {
				t.Fatalf("status history %s", h)
			}
		})
	}
}

// historyOf renders m's status changes as from>to:event, in order.
func historyOf(m *memStore) string {
	var parts []string
	for _, c := range m.history {
		parts = append(parts, c.From+">"+c.To+":"+c.EventID)
	}
	return strings.Join(parts, ",")
}

// createdThenClosing is a log of txn_1 created open with file F-1, then
// changed to closing in the same second.
func createdThenClosing(t0 time.Time) (*fakeLog, domain.EntityKey) {
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e_created", t0, `{"id":"txn_1","status":"open","file_number":"F-1"}`)
	log.add(domain.TransactionStatusChanged, "e_status", t0, `{"id":"txn_1","status":"closing"}`)
	return log, domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"}
}

// panickingStore panics in every transaction, as a bug in a projection
// would.
type panickingStore struct{ *memStore }

func (panickingStore) InTx(context.Context, func(context.Context, Tx) error) error {
	panic("projection bug")
}

// A refold that panics is reported as failed, not tried again (it would
// panic again), and the refolder, in the serving process, goes on.
func TestRefolderReportsAPanicAndDoesNotRetryIt(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log, txn1 := createdThenClosing(t0)
	results := make(chan RefoldResult, 4)
	f := NewRefolder(NewReplayer(panickingStore{newMemStore()}, log, nil), []string{domain.TopicTransactions},
		func(r RefoldResult) { results <- r })
	f.retryDelay = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	f.Add([]Refold{{Key: txn1, Created: t0}})
	select {
	case r := <-results:
		var perr *PanicError
		if !errors.As(r.Err, &perr) {
			t.Fatalf("refold %+v, want the panic as its error", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no refold within 5 s")
	}
	select {
	case r := <-results:
		t.Fatalf("a panicking refold was tried again: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
}

package projections

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// streamLog is a LogScanner that makes its records as it scans them, so
// the test holds none: n transaction updates of 4 KiB each over a few
// entities, in one partition.
type streamLog struct {
	n        int
	entities int
	// idPad lengthens every event id; filler is each payload's note
	// (4 KiB when 0).
	idPad  string
	filler int
	// afterScan runs once the last batch is handed over.
	afterScan func()
}

func (s *streamLog) Bounds(_ context.Context, topics []string, _, _ time.Time) (Bounds, error) {
	b := Bounds{Start: map[Partition]int64{}, End: map[Partition]int64{}}
	for _, t := range topics {
		b.Start[Partition{Topic: t}] = 0
		b.End[Partition{Topic: t}] = 0
	}
	b.End[Partition{Topic: domain.TransactionUpdated.Topic()}] = int64(s.n)
	return b, nil
}

func (s *streamLog) Scan(_ context.Context, req ScanRequest, fn func([]ScannedRecord) error) error {
	filler := strings.Repeat("x", cmp.Or(s.filler, 4<<10))
	for off := 0; off < s.n; off += req.BatchSize {
		batch := make([]ScannedRecord, 0, req.BatchSize)
		for i := off; i < min(off+req.BatchSize, s.n); i++ {
			id, when := s.event(i)
			payload := fmt.Sprintf(`{"id":%q,"data":{"id":"txn_%d","status":"open","note":"%s-%d"}}`, id, i%s.entities, filler, i)
			batch = append(batch, ScannedRecord{Record: Record{
				Partition: Partition{Topic: domain.TransactionUpdated.Topic()}, Offset: int64(i), Timestamp: when,
				Envelope: domain.Envelope{Schema: domain.SchemaV1, EventID: id, IntegrationID: "int_a",
					Type: domain.TransactionUpdated, OccurredAt: when, ReceivedAt: when,
					Source: domain.SourceWebhook, Payload: json.RawMessage(payload)},
			}})
		}
		if err := fn(batch); err != nil {
			return err
		}
	}
	if s.afterScan != nil {
		s.afterScan()
	}
	return nil
}

func (s *streamLog) PartitionOf(string, int) int32 { return 0 }

// event returns the id and time of receipt of the log's i-th event.
func (s *streamLog) event(i int) (string, time.Time) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return fmt.Sprintf("evt_%s%d", s.idPad, i), at.Add(time.Duration(i) * time.Second)
}

// emptyConsistencyStore is a database without rows.
type emptyConsistencyStore struct{}

func (emptyConsistencyStore) EntityRows(context.Context, string) ([]domain.Entity, error) {
	return nil, nil
}
func (emptyConsistencyStore) AuditCounts(context.Context, string) (map[AuditBucket]StatusCounts, error) {
	return nil, nil
}
func (emptyConsistencyStore) MetricsCounts(context.Context, string) (map[AuditBucket]StatusCounts, error) {
	return nil, nil
}
func (emptyConsistencyStore) AuditRows(context.Context, string, func(AuditRef) error) error {
	return nil
}
func (emptyConsistencyStore) RefileAudit(context.Context, string, []AuditRef) (int, error) {
	return 0, nil
}
func (e emptyConsistencyStore) Snapshot(_ context.Context, fn func(ConsistencyStore) error) error {
	return fn(e)
}
func (emptyConsistencyStore) AheadOf(context.Context, string, map[Partition]int64) (map[AuditBucket]int64, map[string]bool, error) {
	return nil, nil, nil
}
func (emptyConsistencyStore) StatusChanges(context.Context, string) ([]domain.StatusChange, error) {
	return nil, nil
}

// Validate folds the entities while it reads the log: what it holds once
// the read ends is the entities and a reference per event, not the events'
// data (50,000 events of 4 KiB here, 200 MiB).
func TestValidateHoldsEntitiesNotEventData(t *testing.T) {
	const events, entities = 50_000, 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	log := &streamLog{n: events, entities: entities, afterScan: func() {
		runtime.GC()
		runtime.ReadMemStats(&after)
	}}
	rep, err := Validate(t.Context(), emptyConsistencyStore{}, log, "int_a", domain.EventTopics)
	if err != nil {
		t.Fatal(err)
	}
	// Every entity is folded, and missing from the empty database.
	if rep.Events != events || rep.Entities != entities {
		t.Fatalf("validated %d events and %d entities, want %d and %d", rep.Events, rep.Entities, events, entities)
	}
	missing := 0
	for _, is := range rep.Issues {
		if is.Kind == IssueMissing {
			missing++
		}
	}
	if missing != entities {
		t.Fatalf("%d missing rows reported, want %d", missing, entities)
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap held after the log read: %d MiB", held>>20)
	if held > 32<<20 {
		t.Fatalf("validate held %d MiB after reading the log: the events' data (200 MiB) is kept", held>>20)
	}
}

// streamAudit is a database without entity rows whose audit holds a row
// for each of the log's events, made as they are read; one row's time of
// receipt was moved by a second.
type streamAudit struct {
	emptyConsistencyStore
	log   *streamLog
	moved int
	// beforeLast runs before the last row is handed over.
	beforeLast func()
}

func (a streamAudit) AuditRows(_ context.Context, _ string, fn func(AuditRef) error) error {
	for i := range a.log.n {
		id, when := a.log.event(i)
		if i == a.moved {
			when = when.Add(time.Second)
		}
		if i == a.log.n-1 {
			a.beforeLast() // while fn, and what it holds, is still in use
		}
		if err := fn(AuditRef{EventID: id, Type: domain.TransactionUpdated, ReceivedAt: when}); err != nil {
			return err
		}
	}
	return nil
}

// Validate compares every audit row with its event's first record, and
// for that holds a few dozen bytes an event, not the event ids (60 bytes
// each here) nor the audit rows.
func TestValidateHoldsLittleForEachEvent(t *testing.T) {
	const events, moved = 200_000, 123_456
	var before, afterScan, afterRows runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	log := &streamLog{n: events, entities: 10, idPad: strings.Repeat("p", 50) + "_", filler: 16, afterScan: func() {
		runtime.GC()
		runtime.ReadMemStats(&afterScan)
	}}
	store := streamAudit{log: log, moved: moved, beforeLast: func() {
		runtime.GC()
		runtime.ReadMemStats(&afterRows)
	}}
	rep, err := Validate(t.Context(), store, log, "int_a", domain.EventTopics)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != events {
		t.Fatalf("validated %d events, want %d", rep.Events, events)
	}
	var misfiled []Issue
	for _, is := range rep.Issues {
		if is.Kind == IssueAuditMisfiled {
			misfiled = append(misfiled, is)
		}
	}
	movedID, _ := log.event(moved)
	if len(misfiled) != 1 || misfiled[0].EventID != movedID {
		t.Fatalf("audit-misfiled issues %+v, want one for %s", misfiled, movedID)
	}
	perEvent := func(m runtime.MemStats) int64 { return (int64(m.HeapAlloc) - int64(before.HeapAlloc)) / events }
	t.Logf("held per event: %d bytes after the log read, %d after the audit rows", perEvent(afterScan), perEvent(afterRows))
	if perEvent(afterScan) > 100 || perEvent(afterRows) > 100 {
		t.Fatalf("validate held %d bytes an event after the log read and %d after the audit rows, want at most 100",
			perEvent(afterScan), perEvent(afterRows))
	}
}

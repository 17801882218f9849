package projections

import (
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
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	filler := strings.Repeat("x", 4<<10)
	for off := 0; off < s.n; off += req.BatchSize {
		batch := make([]ScannedRecord, 0, req.BatchSize)
		for i := off; i < min(off+req.BatchSize, s.n); i++ {
			id := fmt.Sprintf("evt_%d", i)
			when := at.Add(time.Duration(i) * time.Second)
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
func (emptyConsistencyStore) AuditRows(context.Context, string) ([]AuditRef, error) {
	return nil, nil
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

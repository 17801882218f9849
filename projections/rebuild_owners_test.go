package projections

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

func scanned(topic string, partition int32, integration string) ScannedRecord {
	return ScannedRecord{Record: Record{
		Partition: Partition{Topic: topic, Partition: partition},
		Envelope:  domain.Envelope{IntegrationID: integration},
	}}
}

// Each integration's records go to one worker, whatever partition number
// they come under: a rebuild's lookups lock no rows, which is sound only
// while no two workers write one integration's rows.
func TestRebuildWorkersEachOwnTheirIntegrations(t *testing.T) {
	t.Parallel()
	o := &owners{workers: 4, of: map[string]int{}}
	worker := map[string]int{}
	check := func(batch []ScannedRecord) {
		t.Helper()
		parts := o.split(batch)
		n := 0
		for w, part := range parts {
			n += len(part)
			for _, s := range part {
				if prev, ok := worker[s.Envelope.IntegrationID]; ok && prev != w {
					t.Errorf("%s's records went to workers %d and %d", s.Envelope.IntegrationID, prev, w)
				}
				worker[s.Envelope.IntegrationID] = w
			}
		}
		if n != len(batch) {
			t.Errorf("split %d records into %d", len(batch), n)
		}
	}
	// The usual case: an integration's records share a partition number,
	// and a batch goes whole to that number's worker.
	batch := []ScannedRecord{scanned("a", 1, "int_1"), scanned("b", 1, "int_1"), scanned("a", 1, "int_5")}
	if parts := o.split(batch); len(parts[1]) != len(batch) || &parts[1][0] != &batch[0] {
		t.Errorf("a batch of one worker's integrations was split or copied: %v", parts)
	}
	// Topics with different partition counts: int_1 comes under partition
	// 2 as well, next to int_2, whose first records those are.
	check(batch)
	check([]ScannedRecord{scanned("c", 2, "int_2"), scanned("c", 2, "int_1"), scanned("c", 2, "int_2")})
	check([]ScannedRecord{scanned("a", 6, "int_1"), scanned("a", 6, "int_6")})
	if worker["int_1"] != 1 || worker["int_2"] != 2 || worker["int_6"] != 2 {
		t.Errorf("workers %v, want int_1 on 1 (its first partition number), int_2 and int_6 on 2", worker)
	}
	// A batch that mixes partition numbers (a scan of topics with different
	// partition counts merges every partition): each integration first
	// seen there goes to the worker of its own record's number.
	check([]ScannedRecord{scanned("a", 3, "int_7"), scanned("b", 5, "int_8"), scanned("a", 1, "int_1"), scanned("b", 2, "int_8")})
	if worker["int_7"] != 3 || worker["int_8"] != 1 || worker["int_1"] != 1 {
		t.Errorf("workers %v, want int_7 on 3, int_8 on 1 (5 of 4 workers), int_1 still on 1", worker)
	}
	// Order within each worker's part is the batch's.
	parts := o.split([]ScannedRecord{scanned("c", 2, "int_1"), scanned("c", 2, "int_2"), scanned("c", 2, "int_1")})
	if len(parts[1]) != 2 || len(parts[2]) != 1 {
		t.Errorf("parts %v", parts)
	}
}

// A rebuild's lookups lock no rows; a live projector's do.
func TestRebuildLooksUpRowsWithoutLocks(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	for i := range 20 {
		log.add(domain.TaskCreated, fmt.Sprintf("e%d", i), t0.Add(time.Duration(i)*time.Second), fmt.Sprintf(`{"id":"task_%d","title":"t"}`, i%5))
	}
	target := newMemTarget()
	rb, err := NewRebuilder(RebuildConfig{
		LiveSchema: "live",
		Topics:     []string{domain.TopicTasks},
		Names:      map[string]string{domain.TopicTasks: "tasks"},
		BatchSize:  4,
		Workers:    2,
	}, target, memRuns{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Rebuild(context.Background()); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if got := target.store.lookups; got[true] != 0 || got[false] == 0 {
		t.Errorf("rebuild lookups locked %d, unlocked %d; want none locked", got[true], got[false])
	}
	live := NewProjector("tasks", target.store, nil)
	if _, err := live.Apply(context.Background(), log.recs[0].Record); err != nil {
		t.Fatal(err)
	}
	if got := target.store.lookups[true]; got != 1 {
		t.Errorf("live lookups locked %d, want 1", got)
	}
}

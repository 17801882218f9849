package events

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// gatedStore is an in-memory projections.Store whose transactions each
// report the events they save and then wait for the test to let them
// commit.
type gatedStore struct {
	batches chan []string
	release chan struct{}
}

func (s *gatedStore) InTx(ctx context.Context, fn func(context.Context, projections.Tx) error) error {
	return fn(ctx, gatedTx{s})
}

type gatedTx struct{ s *gatedStore }

func (gatedTx) Load(context.Context, projections.Query) (projections.Snapshot, error) {
	return projections.Snapshot{}, nil
}

func (t gatedTx) Save(ctx context.Context, w projections.Writes) error {
	var ids []string
	for _, a := range w.Audit {
		ids = append(ids, a.EventID)
	}
	t.s.batches <- ids
	select {
	case <-t.s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestCommitterGathersExpectedPartitions(t *testing.T) {
	store := &gatedStore{batches: make(chan []string, 1), release: make(chan struct{})}
	p := projections.NewProjector("test", store, nil)
	nop := prometheus.ObserverFunc(func(float64) {})
	c := newCommitter(p, make(chan struct{}, 1), 16, time.Minute, nop, nop)
	c.linger = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	wait := c.start(ctx)
	t.Cleanup(func() { cancel(); wait() })

	var wg sync.WaitGroup
	send := func(part int32, off int64, id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := projections.Record{Partition: projections.Partition{Topic: "t", Partition: part}, Offset: off,
				Envelope: domain.Envelope{Schema: domain.SchemaV1, EventID: id, IntegrationID: "i", Type: "x.unknown"}}
			if _, err := c.apply(ctx, rec); err != nil && ctx.Err() == nil {
				t.Errorf("apply %s: %v", id, err)
			}
		}()
	}
	next := func(want ...string) {
		t.Helper()
		select {
		case got := <-store.batches:
			if len(got) != len(want) {
				t.Fatalf("batch %v, want %v", got, want)
			}
			seen := map[string]bool{}
			for _, id := range got {
				seen[id] = true
			}
			for _, id := range want {
				if !seen[id] {
					t.Fatalf("batch %v, want %v", got, want)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no batch; want %v", want)
		}
	}
	quiet := func(d time.Duration) {
		t.Helper()
		select {
		case got := <-store.batches:
			t.Fatalf("batch %v started while a partition it expects had not answered", got)
		case <-time.After(d):
		}
	}

	// An idle committer applies the first message at once, alone.
	send(0, 0, "a0")
	next("a0")
	// Messages that arrive meanwhile wait for that commit; the next batch
	// takes them and waits for partition 0, acknowledged by the commit.
	send(1, 0, "b0")
	send(2, 0, "c0")
	time.Sleep(50 * time.Millisecond)
	store.release <- struct{}{}
	quiet(100 * time.Millisecond)
	send(0, 1, "a1")
	next("b0", "c0", "a1")
	// Only partition 1 has more: after one linger the batch goes without
	// partitions 0 and 2, and they are expected no more.
	store.release <- struct{}{}
	send(1, 1, "b1")
	next("b1")
	store.release <- struct{}{}
	send(1, 2, "b2")
	next("b2")
	store.release <- struct{}{}
	wg.Wait()
}

package events

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// QUEUE_CONCURRENCY bounds the projection transactions in flight across
// every topic of the process: with one slot, a second topic's transaction
// waits for the first topic's to end; with two, both run at once.
func TestConcurrencyBoundsTransactionsAcrossTopics(t *testing.T) {
	t.Parallel()
	for _, slots := range []int{1, 2} {
		store := &gatedStore{batches: make(chan []string, 2), release: make(chan struct{})}
		r, err := NewRouter(Config{Topics: []string{"softpro.a.v1", "softpro.b.v1"}, Concurrency: slots}, Deps{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Store:  store,
			Subscribers: func(string, func(string, int32, int64), func(string, int32)) (message.Subscriber, error) {
				return nil, nil
			},
			Publisher:  struct{ message.Publisher }{},
			Registerer: prometheus.NewRegistry(),
			Log:        struct{ projections.LogScanner }{},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.commits) != 2 {
			t.Fatalf("%d committers, want one per topic", len(r.commits))
		}
		ctx, cancel := context.WithCancel(context.Background())
		var waits []func()
		for _, c := range r.commits {
			waits = append(waits, c.start(ctx))
		}
		var wg sync.WaitGroup
		send := func(c *committer, topic, id string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := projections.Record{Partition: projections.Partition{Topic: topic, Partition: 0}, Offset: 0,
					Envelope: domain.Envelope{Schema: domain.SchemaV1, EventID: id, IntegrationID: "i", Type: "x.unknown"}}
				if _, err := c.apply(ctx, rec); err != nil && ctx.Err() == nil {
					t.Errorf("apply %s: %v", id, err)
				}
			}()
		}
		next := func(want string) {
			t.Helper()
			select {
			case got := <-store.batches:
				if len(got) != 1 || got[0] != want {
					t.Fatalf("%d slots: batch %v, want [%s]", slots, got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%d slots: no transaction of %s began", slots, want)
			}
		}

		send(r.commits[0], "softpro.a.v1", "a0")
		next("a0")
		send(r.commits[1], "softpro.b.v1", "b0")
		if slots == 1 {
			select {
			case got := <-store.batches:
				t.Fatalf("1 slot: transaction %v began while topic a's was in flight", got)
			case <-time.After(300 * time.Millisecond):
			}
			store.release <- struct{}{}
			next("b0")
			store.release <- struct{}{}
		} else {
			next("b0")
			store.release <- struct{}{}
			store.release <- struct{}{}
		}
		wg.Wait()
		cancel()
		for _, w := range waits {
			w()
		}
	}
}

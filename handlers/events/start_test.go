package events_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
)

// countingSubscriber counts the subscriptions that failed.
type countingSubscriber struct {
	message.Subscriber
	failed *atomic.Int64
}

func (c countingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ch, err := c.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		c.failed.Add(1)
	}
	return ch, err
}

// TestRouterWaitsForTheBrokerToSubscribe runs the router against a broker
// address that does not answer: Run keeps trying, with new subscribers,
// and projects once the address answers.
func TestRouterWaitsForTheBrokerToSubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The router reaches the broker through a proxy that is down at first.
	px := &proxy{target: e.brokers[0]}
	px.start(t)
	px.stop()
	brokers := []string{px.addr}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	wlog := watermill.NewSlogLogger(logger)
	var failed atomic.Int64
	newSubscriber := kafka.NewWatermillSubscriberFactory(brokers, 20*time.Second, wlog)
	r, err := events.NewRouter(events.Config{
		Topics:           e.topics,
		PoisonTopic:      e.poison,
		HandlerTimeout:   5 * time.Second,
		RebalanceTimeout: 20 * time.Second,
		CloseTimeout:     10 * time.Second,
		StartRetryDelay:  50 * time.Millisecond,
	}, events.Deps{
		Logger: logger,
		Store:  postgres.NewProjectionStore(e.pool),
		Subscribers: func(group string, onLag func(string, int32, int64), onRelease func(string, int32)) (message.Subscriber, error) {
			s, err := newSubscriber(group, onLag, onRelease)
			return countingSubscriber{s, &failed}, err
		},
		Publisher:  gochannel.NewGoChannel(gochannel.Config{}, wlog),
		Registerer: prometheus.NewRegistry(),
		Log:        kafka.NewReplayReader(brokers),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("router run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("router did not stop within 30s")
		}
	})

	e.waitFor(20*time.Second, "three failed starts", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run returned while the broker was unreachable: %v", err)
		default:
		}
		return failed.Load() >= 3
	})
	select {
	case <-r.Running():
		t.Fatal("running without a broker")
	default:
	}

	px.start(t)
	t.Cleanup(px.stop)
	select {
	case <-r.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("not subscribed within 30s of the broker answering")
	}
	e.append(0, "int_late", "evt_late", domain.TransactionCreated, t0, `{"id":"txn_late","status":"open"}`)
	e.waitFor(30*time.Second, "the event projected", func() bool {
		return e.count("SELECT count(*) FROM transactions WHERE integration_id = 'int_late' AND id = 'txn_late'") == 1
	})
}

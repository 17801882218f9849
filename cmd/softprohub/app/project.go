package app

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/roisystems/softprohub/handlers/events"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
)

// rebalanceTimeout of the projection consumer groups; the retry budget of
// a message stays under it.
const rebalanceTimeout = events.DefaultRebalanceTimeout

// startProjections wires the live projection router (role project). It
// connects nothing: the router waits in Run until the broker answers.
func (a *App) startProjections() error {
	wlog := watermill.NewSlogLogger(a.log.With("component", "projections"))
	brokers := a.Brokers()
	pub := &poisonPublisher{brokers: brokers, log: wlog}
	a.closers.add(func() { _ = pub.Close() })
	store := postgres.NewProjectionStore(a.pool)
	r, err := events.NewRouter(projectionConfig(a.cfg), events.Deps{
		Logger:      a.log.With("component", "projections"),
		Store:       store,
		AsyncStore:  store.WithAsyncCommit(),
		Subscribers: kafka.NewWatermillSubscriberFactory(brokers, rebalanceTimeout, wlog),
		Publisher:   pub,
		Registerer:  a.registry,
		Log:         kafka.NewReplayReader(brokers),
		// The topics must exist before the consumers ask for them (a
		// broker may create missing ones with its own defaults), and
		// ensuring them is how a start finds out the broker answers.
		Ready: a.ensureTopics,
	})
	if err != nil {
		return fmt.Errorf("projection router: %w", err)
	}
	a.router = r
	a.runnables = append(a.runnables, r.Run)
	return nil
}

// projectionConfig is the live projection router's configuration from the
// QUEUE_* variables.
// QUEUE_RETRY_DELAY=0 retries at once.
func projectionConfig(cfg Config) events.Config {
	delay := time.Duration(cfg.QueueRetryDelayMs) * time.Millisecond
	if delay == 0 {
		delay = events.NoRetryDelay
	}
	return events.Config{
		MaxRetries:       cfg.QueueMaxRetries,
		RetryDelay:       delay,
		Concurrency:      cfg.QueueConcurrency,
		RebalanceTimeout: rebalanceTimeout,
	}
}

// poisonPublisher publishes to the poison topic through a watermill
// publisher made at its first message: the publisher needs the broker to
// answer when it is made, and the process starts without one. Safe for
// concurrent use.
type poisonPublisher struct {
	brokers []string
	log     watermill.LoggerAdapter

	mu     sync.Mutex
	pub    message.Publisher
	closed bool
}

func (p *poisonPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if p.pub == nil && !p.closed {
		pub, err := kafka.NewWatermillPublisher(p.brokers, p.log)
		if err != nil {
			p.mu.Unlock()
			return fmt.Errorf("poison publisher: %w", err)
		}
		p.pub = pub
	}
	pub, closed := p.pub, p.closed
	p.mu.Unlock()
	if closed {
		return errors.New("poison publisher: closed")
	}
	return pub.Publish(topic, msgs...)
}

func (p *poisonPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.pub == nil {
		return nil
	}
	return p.pub.Close()
}

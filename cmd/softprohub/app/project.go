package app

import (
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/roisystems/softprohub/handlers/events"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
)

// rebalanceTimeout of the projection consumer groups; the retry budget of
// a message stays under it.
const rebalanceTimeout = 60 * time.Second

// startProjections wires the live projection router (role project).
func (a *App) startProjections() error {
	wlog := watermill.NewSlogLogger(a.log.With("component", "projections"))
	brokers := a.Brokers()
	pub, err := kafka.NewWatermillPublisher(brokers, wlog)
	if err != nil {
		return fmt.Errorf("poison publisher: %w", err)
	}
	a.closers.add(func() { _ = pub.Close() })
	store := postgres.NewProjectionStore(a.pool)
	r, err := events.NewRouter(events.Config{
		MaxRetries:       a.cfg.QueueMaxRetries,
		RetryDelay:       time.Duration(a.cfg.QueueRetryDelayMs) * time.Millisecond,
		Concurrency:      a.cfg.QueueConcurrency,
		RebalanceTimeout: rebalanceTimeout,
	}, events.Deps{
		Logger:      a.log.With("component", "projections"),
		Store:       store,
		AsyncStore:  store.WithAsyncCommit(),
		Subscribers: kafka.NewWatermillSubscriberFactory(brokers, rebalanceTimeout, wlog),
		Publisher:   pub,
		Registerer:  a.registry,
		Log:         kafka.NewReplayReader(brokers),
	})
	if err != nil {
		return fmt.Errorf("projection router: %w", err)
	}
	a.router = r
	a.runnables = append(a.runnables, r.Run)
	return nil
}

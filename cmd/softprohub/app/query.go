package app

import (
	"context"
	"errors"

	"github.com/go-chi/chi/v5"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// queryMounts wires the events, retry, stats and analyst query API onto the
// authenticated router.
func (a *App) queryMounts() []func(chi.Router) {
	store := postgres.NewQueryStore(a.pool)
	reader := kafka.NewLogReader(a.Brokers())
	deps := httpapi.QueryDeps{
		Events:       store,
		Entities:     store,
		Stats:        store,
		Retrier:      projections.NewRetrier(store, reader, topicAppender{a.producer}, nil),
		Integrations: a.store,
		Lag:          groupLag{admin: a.admin, groups: projectionGroups()},
		Pauses:       a.pauses,
	}
	if a.router != nil {
		if g, ok := any(a.router).(httpapi.QueueGauges); ok {
			deps.Gauges = g
		}
	}
	return []func(chi.Router){httpapi.QueryRoutes(deps)}
}

// projectionGroups maps each topic to the consumer group projecting it.
func projectionGroups() map[string]string {
	groups := make(map[string]string, len(domain.AllTopics))
	for _, t := range domain.EventTopics {
		groups[t] = events.GroupName(events.ProjectionName(t))
	}
	groups[domain.TopicPoison] = events.GroupName(events.PoisonProjection)
	return groups
}

type groupLag struct {
	admin  *kafka.Admin
	groups map[string]string
}

func (g groupLag) Lag(ctx context.Context) (map[string]int64, error) {
	return g.admin.Lag(ctx, g.groups)
}

// topicAppender adapts the producer to projections.TopicAppender: an
// append the brokers did not acknowledge in time is the log being
// unavailable (projections.ErrUnavailable).
type topicAppender struct{ p *kafka.Producer }

func (t topicAppender) AppendTo(ctx context.Context, topic string, e domain.Envelope) error {
	_, err := t.p.AppendTo(ctx, topic, e)
	if errors.Is(err, kafka.ErrDeliveryTimeout) {
		return projections.Unavailable("append", err)
	}
	return err
}

package events

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/roisystems/softprohub/projections"
)

// gauges count what one topic's handler is doing right now.
type gauges struct {
	// active is messages handed to the handler and not yet acked or nacked,
	// backoff included.
	active atomic.Int64
	// delayed is messages waiting out a retry backoff.
	delayed atomic.Int64
}

// Gauges reports, for topic, the messages in flight and those waiting in
// retry backoff. Unknown topics report zeros. Whether a topic is paused is
// not the router's to know (a rebuild pauses it from the database): Pauses
// tells. Safe for concurrent use.
func (r *Router) Gauges(topic string) (active, delayed int64) {
	g, ok := r.gauges[topic]
	if !ok {
		return 0, 0
	}
	return g.active.Load(), g.delayed.Load()
}

// countActive is the outermost middleware: a message is active from the
// moment the handler gets it until its outcome is decided.
func (g *gauges) countActive(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		g.active.Add(1)
		defer g.active.Add(-1)
		return h(msg)
	}
}

// leaveBackoff wraps the retry middleware: a message whose last attempt
// failed is no longer waiting once the retries are over.
func (g *gauges) leaveBackoff(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if d := deliveryFrom(msg.Context()); d.waiting {
			d.waiting = false
			g.delayed.Add(-1)
		}
		return out, err
	}
}

// enterBackoff sits inside the retry middleware: an attempt that failed in
// a way the retry middleware retries starts a backoff, and the next
// attempt ends it.
func (g *gauges) enterBackoff(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		d := deliveryFrom(msg.Context())
		if d.waiting {
			d.waiting = false
			g.delayed.Add(-1)
		}
		out, err := h(msg)
		if err != nil && !projections.IsPermanent(err) && !errors.Is(err, context.Canceled) {
			d.waiting = true
			g.delayed.Add(1)
		}
		return out, err
	}
}

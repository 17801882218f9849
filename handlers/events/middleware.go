package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/cenkalti/backoff/v5"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// Metadata keys the subscriber sets on each message (see
// infra/kafka.MetadataTopic and friends).
const (
	metaTopic     = "kafka_topic"
	metaPartition = "kafka_partition"
	metaOffset    = "kafka_offset"
	metaKey       = "kafka_key"
	metaTimestamp = "kafka_timestamp"
	metaType      = domain.HeaderType
)

// Metadata keys of a poison record, a wire contract of softpro.poison.v1:
// why it was poisoned, where the original lives, and how often it was tried.
const (
	PoisonReason    = "poison_reason"
	PoisonTopic     = "poison_topic"
	PoisonPartition = "poison_partition"
	PoisonOffset    = "poison_offset"
	// PoisonTimestamp is the original record's log timestamp, in
	// microseconds since the epoch.
	PoisonTimestamp     = "poison_timestamp"
	PoisonAttempts      = "poison_attempts"
	PoisonProjectionKey = "poison_projection"
)

// delivery tracks one delivery of a message through its retries. The
// outermost middleware puts it in the context that every attempt starts
// from, so it survives the retry middleware's context reset.
type delivery struct {
	started  time.Time
	attempts int
	outcome  projections.Outcome
	// waiting is true while the message sits in a retry backoff.
	waiting bool
}

type deliveryKey struct{}

func deliveryFrom(ctx context.Context) *delivery {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	if d == nil {
		return &delivery{started: time.Now()}
	}
	return d
}

// notTheEvents reports whether err says nothing about the event: the
// process is shutting down or a dependency is unavailable. Such messages
// are nacked and redelivered, never poisoned.
func notTheEvents(ctx context.Context, err error) bool {
	if projections.IsPermanent(err) {
		return false
	}
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || projections.IsTransient(err)
}

// poison sends a message that failed for reasons of its own to the poison
// topic, with the reason, its position and attempt count, and acks it so
// its partition moves on. Shutdowns and unavailable dependencies are
// returned as they are: the message is nacked and tried again.
func (r *Router) poison(projection string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			d := &delivery{started: time.Now()}
			ctx := context.WithValue(msg.Context(), deliveryKey{}, d)
			msg.SetContext(ctx)
			_, err := h(msg)
			if err == nil {
				return nil, nil
			}
			topic := msg.Metadata.Get(metaTopic)
			if notTheEvents(ctx, err) {
				if ctx.Err() == nil {
					r.log.Warn("projection unavailable, message will be redelivered",
						"topic", topic, "partition", msg.Metadata.Get(metaPartition), "offset", msg.Metadata.Get(metaOffset), "err", err)
				}
				return nil, err
			}
			pm := message.NewMessage(msg.UUID, msg.Payload)
			for k, v := range msg.Metadata {
				pm.Metadata.Set(k, v)
			}
			pm.Metadata.Set(PoisonReason, err.Error())
			pm.Metadata.Set(PoisonTopic, topic)
			pm.Metadata.Set(PoisonPartition, msg.Metadata.Get(metaPartition))
			pm.Metadata.Set(PoisonOffset, msg.Metadata.Get(metaOffset))
			pm.Metadata.Set(PoisonTimestamp, msg.Metadata.Get(metaTimestamp))
			pm.Metadata.Set(PoisonAttempts, strconv.Itoa(max(d.attempts, 1)))
			pm.Metadata.Set(PoisonProjectionKey, projection)
			if perr := r.pub.Publish(r.cfg.PoisonTopic, pm); perr != nil {
				return nil, errors.Join(err, fmt.Errorf("publish to poison topic: %w", perr))
			}
			r.metrics.poisoned.WithLabelValues(topic).Inc()
			r.log.Error("event poisoned", "topic", topic, "partition", msg.Metadata.Get(metaPartition),
				"offset", msg.Metadata.Get(metaOffset), "attempts", d.attempts, "err", err)
			return nil, nil
		}
	}
}

func recoverer(h message.HandlerFunc) message.HandlerFunc { return middleware.Recoverer(h) }

// retry makes MaxRetries attempts in all, waiting RetryDelay doubling in
// between, each attempt with a fresh context, as long as the retry budget
// (under the rebalance timeout) lasts. Permanent errors and shutdowns are
// not retried: they stop the backoff from inside. (Retry's ShouldRetry
// hook is not used: asking it takes a step of the backoff, so each failed
// attempt would take two and the waits would grow fourfold.)
func (r *Router) retry() message.HandlerMiddleware {
	delay := max(r.cfg.RetryDelay, 0) // NoRetryDelay
	retry := middleware.Retry{
		MaxRetries:          r.cfg.MaxRetries - 1,
		InitialInterval:     delay,
		MaxInterval:         maxRetryInterval(delay, r.cfg.MaxRetries, r.cfg.retryBudget()),
		Multiplier:          2,
		MaxElapsedTime:      r.cfg.retryBudget(),
		RandomizationFactor: 0,
		ResetContextOnRetry: true,
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return retry.Middleware(func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil && (projections.IsPermanent(err) || errors.Is(err, context.Canceled)) {
				// Retry hands the error itself back, unwrapped.
				return out, backoff.Permanent(err)
			}
			return out, err
		})
	}
}

// maxRetryInterval is the cap on one wait: the longest of the attempts'
// waits (delay doubled before each attempt after the second), but no
// more than the budget, which no wait can outlast anyway. Doubling stops
// there, so a large attempt count cannot overflow the cap into a negative
// one (which would make every wait 1 ms).
func maxRetryInterval(delay time.Duration, attempts int, budget time.Duration) time.Duration {
	longest := delay
	for i := 2; i < attempts && longest < budget; i++ {
		longest *= 2
	}
	return max(longest, time.Millisecond)
}

func timeout(d time.Duration) message.HandlerMiddleware { return middleware.Timeout(d) }

// measure counts each attempt by type and outcome and times it.
func (r *Router) measure(topic string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := h(msg)
			d := deliveryFrom(msg.Context())
			outcome := string(d.outcome)
			switch {
			case err == nil:
			case projections.IsPermanent(err):
				outcome = "permanent"
			case errors.Is(err, context.Canceled):
				outcome = "cancelled"
			case projections.IsTransient(err):
				outcome = "unavailable"
			default:
				outcome = "error"
			}
			if d.attempts > 1 {
				r.metrics.retries.WithLabelValues(topic).Inc()
			}
			r.metrics.events.WithLabelValues(topic, typeLabel(msg.Metadata.Get(metaType)), outcome).Inc()
			r.metrics.latency.WithLabelValues(topic).Observe(time.Since(start).Seconds())
			return out, err
		}
	}
}

func typeLabel(t string) string {
	if et := domain.EventType(t); et.Known() {
		return t
	}
	return "other"
}

// recordOf reads the record a message carries. A value that is not an
// envelope can never project.
func recordOf(msg *message.Message) (projections.Record, error) {
	partition, perr := strconv.ParseInt(msg.Metadata.Get(metaPartition), 10, 32)
	offset, oerr := strconv.ParseInt(msg.Metadata.Get(metaOffset), 10, 64)
	topic := msg.Metadata.Get(metaTopic)
	if topic == "" {
		topic = message.SubscribeTopicFromCtx(msg.Context())
	}
	if perr != nil || oerr != nil || topic == "" {
		return projections.Record{}, projections.Permanent(fmt.Errorf("message %s has no kafka position", msg.UUID))
	}
	env, err := domain.DecodeEnvelope(msg.Payload)
	rec := projections.Record{
		Partition: projections.Partition{Topic: topic, Partition: int32(partition)},
		Offset:    offset,
		Envelope:  env,
	}
	rec.Timestamp = unixMicros(msg.Metadata.Get(metaTimestamp))
	if err != nil {
		return rec, projections.Permanent(fmt.Errorf("record %s/%d@%d: %w", topic, partition, offset, err))
	}
	return rec, nil
}

// project is the handler of an event topic: it applies the record through
// the projector. A failed attempt is noted in the audit (PROCESSING, with
// the error and retry count) on a best-effort basis.
func (r *Router) project(p *projections.Projector, c *committer) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		ctx := msg.Context()
		d := deliveryFrom(ctx)
		d.attempts++
		rec, err := recordOf(msg)
		if err != nil {
			return err
		}
		rec.Attempt = d.attempts
		rec.StartedAt = d.started
		outcome, err := c.apply(ctx, rec)
		if err != nil {
			if !projections.IsPermanent(err) && !errors.Is(err, context.Canceled) {
				actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				if aerr := p.RecordAttempt(actx, rec, err); aerr != nil {
					r.log.Debug("could not note failed attempt", "event", rec.Envelope.EventID, "err", aerr)
				}
				cancel()
			}
			return err
		}
		d.outcome = outcome
		return nil
	}
}

// unixMicros reads a timestamp metadata value (Unix microseconds); zero
// when absent or malformed.
func unixMicros(v string) time.Time {
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// markFailed is the poison consumer's handler: it marks the poisoned event
// FAILED with its reason.
func (r *Router) markFailed(p *projections.Projector) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		rec, err := recordOf(msg)
		if err != nil && !errors.Is(err, domain.ErrInvalidEnvelope) {
			return err
		}
		originPartition, _ := strconv.ParseInt(msg.Metadata.Get(PoisonPartition), 10, 32)
		originOffset, _ := strconv.ParseInt(msg.Metadata.Get(PoisonOffset), 10, 64)
		attempts, _ := strconv.Atoi(msg.Metadata.Get(PoisonAttempts))
		return p.Fail(msg.Context(), projections.Failure{
			Record:           rec,
			Origin:           projections.Partition{Topic: msg.Metadata.Get(PoisonTopic), Partition: int32(originPartition)},
			OriginOffset:     originOffset,
			OriginAppendedAt: unixMicros(msg.Metadata.Get(PoisonTimestamp)),
			Reason:           msg.Metadata.Get(PoisonReason),
			Attempts:         attempts,
		})
	}
}

// dropUnfixable acks a poison record that fails for reasons of its own
// after its retries (there is no poison queue for the poison queue), and
// lets shutdowns and outages through to be redelivered.
func (r *Router) dropUnfixable() message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			_, err := h(msg)
			if err == nil || notTheEvents(ctx, err) {
				return nil, err
			}
			r.log.Error("poison record dropped", slog.String("partition", msg.Metadata.Get(metaPartition)),
				slog.String("offset", msg.Metadata.Get(metaOffset)), slog.Any("err", err))
			return nil, nil
		}
	}
}

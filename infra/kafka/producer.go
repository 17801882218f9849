package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// maxBatchBytes is the largest record batch the producer sends (franz-go's
// default, below the 1,048,588 bytes brokers and topics accept by default).
// A record is one batch at most.
const maxBatchBytes = 1_000_012

// MaxPayloadBytes is the largest payload an appended event can carry: the
// batch limit less room for the envelope's other fields, the key and the
// headers (ids of at most a few hundred bytes each). Ingest's body limit
// must not exceed it.
const MaxPayloadBytes = 960 << 10

// ErrDeliveryTimeout is wrapped by the error of an append that the broker
// did not acknowledge within ProducerConfig.DeliveryTimeout.
var ErrDeliveryTimeout = errors.New("not acknowledged within the delivery timeout")

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// ClientID names the client to the brokers. Default "softprohub".
	ClientID string
	// DeliveryTimeout bounds how long a record may wait for its
	// acknowledgement, including retries across broker outages; the record
	// is failed after it. Default 10s.
	DeliveryTimeout time.Duration
	// Linger is how long a partition waits for more records before a
	// produce request is built. Default 0: records are sent at once, and
	// records appended while a request is in flight still share the next
	// request.
	Linger time.Duration
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

func (c *ProducerConfig) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = "softprohub"
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 10 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c ProducerConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers are required"))
	}
	if c.DeliveryTimeout < 0 {
		errs = append(errs, fmt.Errorf("delivery timeout must not be negative, got %v", c.DeliveryTimeout))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("linger must not be negative, got %v", c.Linger))
	}
	return errors.Join(errs...)
}

// Producer appends envelopes to the event log. It is the only writer of the
// event topics, so that one partitioner decides where each integration's
// events live: the record key is the integration id, hashed with murmur2 as
// Kafka's Java client does.
//
// Records are produced idempotently with acks=all, so the client's own
// retries never duplicate a record. A Producer is safe for concurrent use;
// concurrent appends are batched into shared produce requests.
type Producer struct {
	cl      *kgo.Client
	timeout time.Duration
}

var _ ingest.Appender = (*Producer)(nil)

// NewProducer returns a Producer for the given brokers. It does not connect:
// the first Append (or Ping) does, so the broker may start later.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchMaxBytes(maxBatchBytes),
		// By default franz-go never fails an idempotent record whose
		// request was written but not answered (the broker may have
		// stored it), so a broker that dies mid-request would block
		// Append until it is back, whatever the timeout or context.
		// Appends must be bounded in time (a webhook sender is waiting),
		// so such records fail after DeliveryTimeout too, at the cost
		// that a failed Append may still have landed: the caller's retry
		// can then put the same event id on the log twice.
		kgo.AllowIdempotentProduceCancellation(),
		// franz-go refreshes metadata at most every 5s by default, and a
		// record waiting for a partition whose broker is unreachable is
		// only failed, or sent to the restarted broker, after a refresh:
		// an outage would hold appends for up to 5s past both the
		// timeout and the broker's return.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	if cfg.Logger != nil {
		opts = append(opts, kgo.WithLogger(kslog.New(cfg.Logger)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	return &Producer{cl: cl, timeout: cfg.DeliveryTimeout}, nil
}

// Append produces e to the topic of its type (e.Type.Topic()) and returns
// the record's position once every in-sync replica has acknowledged it.
// The topic must exist (EnsureTopics): the producer never creates topics,
// which would get the broker's retention instead of the log's.
//
// The record key is e.IntegrationID, the value is e.Encode() (the payload
// byte for byte) and the headers repeat type, event id and schema. An
// envelope without schema, event id, integration id or type, or whose
// payload is not JSON, is rejected with an error wrapping
// domain.ErrInvalidEnvelope and nothing is produced.
//
// An error means the event is not on the log as far as the caller can know:
// the broker did not acknowledge it within DeliveryTimeout (the error wraps
// ErrDeliveryTimeout), or ctx ended first (it wraps ctx.Err()). If the
// record had already been sent when that happened, the broker may still
// have stored it.
//
// To keep each partition gapless, franz-go fails a timed-out or cancelled
// record together with every record buffered behind it on the same
// partition, so cancelling ctx early can fail other appends that were
// waiting with it; their callers retry like after any failed append.
func (p *Producer) Append(ctx context.Context, e domain.Envelope) (ingest.Position, error) {
	return p.AppendTo(ctx, e.Type.Topic(), e)
}

// AppendTo is Append to an explicit topic, for manual retry and replay
// tooling. The key and headers are the same as Append's.
func (p *Producer) AppendTo(ctx context.Context, topic string, e domain.Envelope) (ingest.Position, error) {
	rec, err := newRecord(topic, e)
	if err != nil {
		return ingest.Position{}, fmt.Errorf("append %s: %w", topic, err)
	}
	// RecordDeliveryTimeout alone is only checked between requests; the
	// context fails the record at the timeout wherever it is.
	dctx, cancel := context.WithTimeoutCause(ctx, p.timeout, ErrDeliveryTimeout)
	defer cancel()
	if err := p.cl.ProduceSync(dctx, rec).FirstErr(); err != nil {
		// franz-go reports the last broker error rather than the
		// context's; name the reason the caller can act on.
		switch {
		case ctx.Err() != nil:
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w: %w", ctx.Err(), err)
			}
		case errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(context.Cause(dctx), ErrDeliveryTimeout):
			err = fmt.Errorf("%w: %w", ErrDeliveryTimeout, err)
		case errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge):
			err = fmt.Errorf("%w: %w", ingest.ErrRecordTooLarge, err)
		}
		return ingest.Position{}, fmt.Errorf("append %s: event %s: %w", topic, e.EventID, err)
	}
	return ingest.Position{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}, nil
}

// newRecord builds the record of e on topic.
func newRecord(topic string, e domain.Envelope) (*kgo.Record, error) {
	var missing []error
	for _, f := range []struct{ name, value string }{
		{"schema", e.Schema},
		{"eventId", e.EventID},
		{"integrationId", e.IntegrationID},
		{"type", string(e.Type)},
	} {
		if f.value == "" {
			missing = append(missing, fmt.Errorf("%w: %s is required", domain.ErrInvalidEnvelope, f.name))
		}
	}
	if topic == "" {
		missing = append(missing, errors.New("topic is required"))
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	value, err := e.Encode()
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(e.IntegrationID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: domain.HeaderType, Value: []byte(e.Type)},
			{Key: domain.HeaderEventID, Value: []byte(e.EventID)},
			{Key: domain.HeaderSchema, Value: []byte(e.Schema)},
		},
	}, nil
}

// Ping reports whether a broker answers, for readiness checks.
func (p *Producer) Ping(ctx context.Context) error {
	if err := p.cl.Ping(ctx); err != nil {
		return fmt.Errorf("ping brokers: %w", err)
	}
	return nil
}

// Close waits up to DeliveryTimeout for records still being appended, then
// closes the client. Appends that have not finished by then fail, as do
// appends after Close.
func (p *Producer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	_ = p.cl.Flush(ctx) // an unflushed record fails its own Append
	p.cl.Close()
}

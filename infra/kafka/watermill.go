package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys the watermill subscriber sets on every consumed message:
// where the record lives. Handlers read them instead of depending on
// watermill-kafka's context helpers.
const (
	MetadataTopic     = "kafka_topic"
	MetadataPartition = "kafka_partition"
	MetadataOffset    = "kafka_offset"
	// MetadataKey is the record key; the poison publisher keys poison
	// records by it so an integration's dead letters stay in order.
	MetadataKey = "kafka_key"
	// MetadataTimestamp is the record's timestamp (when it was appended),
	// in Unix microseconds; absent when the record has none.
	MetadataTimestamp = "kafka_timestamp"
)

// WatermillConfig configures a watermill-kafka consumer-group subscriber.
type WatermillConfig struct {
	Brokers []string
	// Group is the consumer group, a wire contract.
	Group string
	// RebalanceTimeout is how long the group waits for a member to finish
	// its in-flight message when partitions move (default 60 s). A handler's
	// retries must fit in it.
	RebalanceTimeout time.Duration
	// OnLag, when set, is called with each claimed partition's lag: the
	// records after the one being handled (before the first is handed
	// over: after the claim's initial offset). It is called as the claim
	// starts, as each message is handed to the handler, and every LagEvery
	// in between, so the figure keeps up with appends while one message
	// takes long (retries during an outage). The partition's head is as of
	// the consumer's last fetch.
	OnLag func(topic string, partition int32, lag int64)
	// OnRelease, when set, is called once a partition's claim has ended (a
	// rebalance moved it, or the subscriber stopped), after its last OnLag:
	// its lag is no longer this subscriber's to report.
	OnRelease func(topic string, partition int32)
	// LagEvery is how often OnLag is called while a partition is claimed
	// (default 1 s).
	LagEvery time.Duration
	// ClientID names the client to the broker (default "softprohub").
	ClientID string
}

func (c *WatermillConfig) setDefaults() {
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 60 * time.Second
	}
	if c.ClientID == "" {
		c.ClientID = "softprohub"
	}
	if c.LagEvery == 0 {
		c.LagEvery = time.Second
	}
}

// Validate reports every problem with c.
func (c WatermillConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers are required"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("group is required"))
	}
	if c.RebalanceTimeout < time.Second {
		errs = append(errs, fmt.Errorf("rebalance timeout %v is under 1s", c.RebalanceTimeout))
	}
	return errors.Join(errs...)
}

// saramaVersion is the protocol version spoken to the broker; kfake and
// every Kafka since 2.8 support it.
var saramaVersion = sarama.V2_8_0_0

// NewWatermillSubscriber returns a watermill subscriber that consumes in
// consumer group cfg.Group from the oldest offset when the group has none.
// Every claimed partition delivers one message at a time and waits for its
// ack before the next, so partitions proceed in parallel and each in order.
// Offsets are committed to the group after the ack, asynchronously: the
// projections' own checkpoints, not the group offsets, are what make a
// redelivery harmless.
func NewWatermillSubscriber(cfg WatermillConfig, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new watermill subscriber: %w", err)
	}
	sc := wkafka.DefaultSaramaSubscriberConfig()
	sc.Version = saramaVersion
	sc.ClientID = cfg.ClientID
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Rebalance.Timeout = cfg.RebalanceTimeout
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	sc.Consumer.MaxProcessingTime = cfg.RebalanceTimeout
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	var tracer wkafka.SaramaTracer
	if cfg.OnLag != nil {
		tracer = lagTracer{onLag: cfg.OnLag, onRelease: cfg.OnRelease, every: cfg.LagEvery}
	}
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           positionUnmarshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         cfg.Group,
		NackResendSleep:       100 * time.Millisecond,
		ReconnectRetrySleep:   time.Second,
		Tracer:                tracer,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("new watermill subscriber %s: %w", cfg.Group, err)
	}
	return sub, nil
}

// NewWatermillSubscriberFactory returns a function that builds a
// subscriber for a consumer group, in the shape handlers/events takes:
// onLag and onRelease are WatermillConfig's OnLag and OnRelease.
func NewWatermillSubscriberFactory(brokers []string, rebalanceTimeout time.Duration, logger watermill.LoggerAdapter) func(group string, onLag func(topic string, partition int32, lag int64), onRelease func(topic string, partition int32)) (message.Subscriber, error) {
	return func(group string, onLag func(topic string, partition int32, lag int64), onRelease func(topic string, partition int32)) (message.Subscriber, error) {
		return NewWatermillSubscriber(WatermillConfig{Brokers: brokers, Group: group, RebalanceTimeout: rebalanceTimeout, OnLag: onLag, OnRelease: onRelease}, logger)
	}
}

// NewWatermillPublisher returns a watermill publisher for the poison topic.
// It waits for acks=all, and keys each record by the message's MetadataKey
// (the integration id of the original record).
func NewWatermillPublisher(brokers []string, logger watermill.LoggerAdapter) (message.Publisher, error) {
	pc := wkafka.DefaultSaramaSyncPublisherConfig()
	pc.Version = saramaVersion
	pc.ClientID = "softprohub"
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Partitioner = sarama.NewHashPartitioner
	pc.Metadata.Retry.Backoff = 250 * time.Millisecond
	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{
		Brokers: brokers,
		Marshaler: wkafka.NewWithPartitioningMarshaler(func(_ string, msg *message.Message) (string, error) {
			return msg.Metadata.Get(MetadataKey), nil
		}),
		OverwriteSaramaConfig: pc,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("new watermill publisher: %w", err)
	}
	return pub, nil
}

// positionUnmarshaler is watermill-kafka's default unmarshaler plus the
// record's position and key in the metadata. Headers that collide with
// those keys (a poison record carries its original's) are overwritten.
type positionUnmarshaler struct {
	wkafka.DefaultMarshaler
}

func (u positionUnmarshaler) Unmarshal(m *sarama.ConsumerMessage) (*message.Message, error) {
	msg, err := u.DefaultMarshaler.Unmarshal(m)
	if err != nil {
		return nil, err
	}
	if msg.UUID == "" {
		msg.UUID = m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10)
	}
	msg.Metadata.Set(MetadataTopic, m.Topic)
	msg.Metadata.Set(MetadataPartition, strconv.Itoa(int(m.Partition)))
	msg.Metadata.Set(MetadataOffset, strconv.FormatInt(m.Offset, 10))
	msg.Metadata.Set(MetadataKey, string(m.Key))
	if !m.Timestamp.IsZero() {
		msg.Metadata.Set(MetadataTimestamp, strconv.FormatInt(m.Timestamp.UnixMicro(), 10))
	}
	return msg, nil
}

// lagTracer hooks into each claimed partition to report its lag; it traces
// nothing.
type lagTracer struct {
	onLag     func(topic string, partition int32, lag int64)
	onRelease func(topic string, partition int32)
	every     time.Duration
}

func (t lagTracer) WrapConsumer(c sarama.Consumer) sarama.Consumer { return c }

func (t lagTracer) WrapPartitionConsumer(pc sarama.PartitionConsumer) sarama.PartitionConsumer {
	return pc
}

func (t lagTracer) WrapSyncProducer(_ *sarama.Config, p sarama.SyncProducer) sarama.SyncProducer {
	return p
}

func (t lagTracer) WrapConsumerGroupHandler(h sarama.ConsumerGroupHandler) sarama.ConsumerGroupHandler {
	return lagHandler{ConsumerGroupHandler: h, lagTracer: t}
}

type lagHandler struct {
	sarama.ConsumerGroupHandler
	lagTracer
}

// ConsumeClaim hands the claim's messages to the handler through a
// channel of its own, noting the offset of each one taken (the record
// being handled, one at a time), and reports the lag behind it from a
// goroutine of its own: when a message is taken and every LagEvery, so a
// message that takes long does not freeze the figure. Once the claim ends
// and that goroutine stopped, the partition is released.
func (h lagHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	msgs := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	// next is the offset after the record being handled.
	var next atomic.Int64
	next.Store(claim.InitialOffset())
	taken := make(chan struct{}, 1)
	go func() {
		defer close(msgs)
		for m := range claim.Messages() {
			select {
			case msgs <- m:
				// Taken: m is the record being handled now.
				next.Store(m.Offset + 1)
				select {
				case taken <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		tick := time.NewTicker(h.every)
		defer tick.Stop()
		for {
			// A negative initial offset (oldest, newest) is not known
			// until a record is taken.
			if n := next.Load(); n >= 0 {
				h.onLag(claim.Topic(), claim.Partition(), max(claim.HighWaterMarkOffset()-n, 0))
			}
			select {
			case <-done:
				return
			case <-taken:
			case <-tick.C:
			}
		}
	}()
	defer func() {
		close(done)
		<-reported
		if h.onRelease != nil {
			h.onRelease(claim.Topic(), claim.Partition())
		}
	}()
	return h.ConsumerGroupHandler.ConsumeClaim(sess, lagClaim{ConsumerGroupClaim: claim, msgs: msgs})
}

type lagClaim struct {
	sarama.ConsumerGroupClaim
	msgs chan *sarama.ConsumerMessage
}

func (c lagClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

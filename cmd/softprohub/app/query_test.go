package app

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/projections"
)

// TestTopicAppenderUnacknowledgedIsUnavailable: a retry's append that no
// broker acknowledges is the log being unavailable, which the API answers
// with 503, not a failure of the event.
func TestTopicAppenderUnacknowledgedIsUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: []string{addr}, DeliveryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	e := domain.Envelope{Schema: domain.SchemaV1, EventID: "evt_1", IntegrationID: "a", Type: domain.TransactionCreated,
		OccurredAt: time.Now(), ReceivedAt: time.Now(), Source: domain.SourceRetry, Payload: json.RawMessage(`{"id":"txn_1"}`)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = topicAppender{p}.AppendTo(ctx, domain.TopicTransactions, e)
	if !errors.Is(err, projections.ErrUnavailable) || !errors.Is(err, kafka.ErrDeliveryTimeout) {
		t.Fatalf("append without a broker: %v, want ErrUnavailable wrapping ErrDeliveryTimeout", err)
	}
}

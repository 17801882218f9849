package kafka

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

func TestProducerAppend(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	const partitions = testPartitions
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)

	tests := []struct {
		name    string
		typ     domain.EventType
		payload string
	}{
		{name: "transaction with whitespace", typ: domain.TransactionStatusChanged, payload: "{\n  \"transactionId\" : \"T-1\",\n  \"status\":\"closed\"   }"},
		{name: "document with unicode", typ: domain.DocumentUploaded, payload: `{"name":"d\u00e9p\u00f4t.pdf","size":  1e3}`},
		{name: "sync record", typ: domain.ContactSynced, payload: `[1, 2,3 ]`},
		{name: "unknown type goes to other", typ: "escrow.funded", payload: ` {"a":null} `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			integration := randomID("int")
			first := envelope(integration, tt.typ, tt.payload)
			second := envelope(integration, tt.typ, tt.payload)

			pos1 := mustAppend(t, p, first)
			pos2 := mustAppend(t, p, second)

			wantPart := javaPartition([]byte(integration), partitions)
			wantPos := ingest.Position{Topic: tt.typ.Topic(), Partition: wantPart}
			if got := (ingest.Position{Topic: pos1.Topic, Partition: pos1.Partition}); got != wantPos {
				t.Errorf("position = %+v, want topic/partition %+v", pos1, wantPos)
			}
			if pos2.Topic != pos1.Topic || pos2.Partition != pos1.Partition || pos2.Offset <= pos1.Offset {
				t.Errorf("second append at %+v, want after %+v on the same partition", pos2, pos1)
			}

			r := readRecord(t, b.Addrs(), pos1)
			if string(r.Key) != integration {
				t.Errorf("key = %q, want %q", r.Key, integration)
			}
			for key, want := range map[string]string{
				domain.HeaderType:    string(tt.typ),
				domain.HeaderEventID: first.EventID,
				domain.HeaderSchema:  domain.SchemaV1,
			} {
				if got, ok := header(r, key); !ok || got != want {
					t.Errorf("header %s = %q (once: %v), want %q", key, got, ok, want)
				}
			}
			if want := `,"payload":` + tt.payload + `}`; !bytes.HasSuffix(r.Value, []byte(want)) {
				t.Errorf("value = %s, want it to end with the payload byte for byte: %s", r.Value, want)
			}
			got, err := domain.DecodeEnvelope(r.Value)
			if err != nil {
				t.Fatalf("decode value: %v", err)
			}
			if want := []byte(tt.payload); !bytes.Equal(got.Payload, want) {
				t.Errorf("decoded payload = %q, want %q", got.Payload, want)
			}
			if got.EventID != first.EventID || got.IntegrationID != integration || got.Type != tt.typ ||
				!got.ReceivedAt.Equal(first.ReceivedAt) || got.Source != first.Source {
				t.Errorf("envelope = %+v, want %+v", got, first)
			}
		})
	}
}

func TestProducerAppendToExplicitTopic(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	topic := randomID("replay")
	if _, err := EnsureTopics(testContext(t), b.Addrs(), []string{topic}, TopicSpec{Partitions: 3}); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	p := newProducer(t, b.Addrs(), 5*time.Second)
	e := envelope(randomID("int"), domain.TaskCreated, "")

	pos, err := p.AppendTo(testContext(t), topic, e)
	if err != nil {
		t.Fatalf("append to: %v", err)
	}
	want := ingest.Position{Topic: topic, Partition: javaPartition([]byte(e.IntegrationID), 3), Offset: 0}
	if pos != want {
		t.Errorf("position = %+v, want %+v", pos, want)
	}
}

func TestProducerRejectsInvalidEnvelope(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	p := newProducer(t, b.Addrs(), 5*time.Second)

	tests := []struct {
		name   string
		mutate func(*domain.Envelope)
	}{
		{name: "no integration", mutate: func(e *domain.Envelope) { e.IntegrationID = "" }},
		{name: "no event id", mutate: func(e *domain.Envelope) { e.EventID = "" }},
		{name: "no schema", mutate: func(e *domain.Envelope) { e.Schema = "" }},
		{name: "no type", mutate: func(e *domain.Envelope) { e.Type = "" }},
		{name: "payload not json", mutate: func(e *domain.Envelope) { e.Payload = []byte(`{"a":`) }},
		{name: "empty payload", mutate: func(e *domain.Envelope) { e.Payload = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := envelope(randomID("int"), domain.ContactCreated, "")
			tt.mutate(&e)
			if _, err := p.Append(testContext(t), e); !errors.Is(err, domain.ErrInvalidEnvelope) {
				t.Errorf("append error = %v, want domain.ErrInvalidEnvelope", err)
			}
		})
	}
}

// A broker that is down fails the append within the delivery timeout, and
// the same producer appends again once the broker is back on its port.
func TestProducerBrokerOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startBroker(t, dir, 0)
	addrs := b.Addrs()
	ensureTopics(t, addrs)
	port := portOf(t, addrs[0])
	const timeout = 1500 * time.Millisecond
	p := newProducer(t, addrs, timeout)
	integration := randomID("int")

	before := mustAppend(t, p, envelope(integration, domain.TransactionCreated, ""))
	b.Close()

	start := time.Now()
	_, err := p.Append(testContext(t), envelope(integration, domain.TransactionCreated, ""))
	elapsed := time.Since(start)
	if !errors.Is(err, ErrDeliveryTimeout) {
		t.Fatalf("append with the broker down: error %v, want ErrDeliveryTimeout", err)
	}
	if elapsed < timeout || elapsed > timeout+time.Second {
		t.Errorf("append failed after %v, want about %v", elapsed, timeout)
	}

	b2 := startBroker(t, dir, port)
	after := mustAppend(t, p, envelope(integration, domain.TransactionCreated, ""))
	want := ingest.Position{Topic: before.Topic, Partition: before.Partition, Offset: before.Offset + 1}
	if after != want {
		t.Errorf("append after restart at %+v, want %+v (the failed one must not be on the log)", after, want)
	}
	if err := p.Ping(testContext(t)); err != nil {
		t.Errorf("ping after restart: %v", err)
	}
	_ = b2
}

// A produce request the broker never answers still fails the append within
// the delivery timeout: the producer must not wait for the broker to come
// back to learn the outcome.
func TestProducerUnansweredRequest(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	const timeout = 1500 * time.Millisecond
	p := newProducer(t, b.Addrs(), timeout)
	integration := randomID("int")
	mustAppend(t, p, envelope(integration, domain.TaskCreated, "")) // connect and learn metadata

	var drop atomic.Bool
	drop.Store(true)
	b.Cluster().ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster().KeepControl()
		if drop.Load() {
			return nil, errors.New("injected: connection lost mid-request"), true
		}
		return nil, nil, false
	})

	start := time.Now()
	_, err := p.Append(testContext(t), envelope(integration, domain.TaskCreated, ""))
	elapsed := time.Since(start)
	if !errors.Is(err, ErrDeliveryTimeout) {
		t.Fatalf("append with produce requests dropped: error %v, want ErrDeliveryTimeout", err)
	}
	if elapsed < timeout || elapsed > timeout+time.Second {
		t.Errorf("append failed after %v, want about %v", elapsed, timeout)
	}

	drop.Store(false)
	if _, err := p.Append(testContext(t), envelope(integration, domain.TaskCreated, "")); err != nil {
		t.Errorf("append after the fault cleared: %v", err)
	}
}

func TestProducerAppendHonoursContext(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	p := newProducer(t, b.Addrs(), 10*time.Second)
	b.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Append(ctx, envelope(randomID("int"), domain.TaskCreated, ""))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("append error = %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("append returned after %v, want soon after the 300ms deadline", elapsed)
	}
}

func TestNewProducerValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  ProducerConfig
	}{
		{name: "no brokers", cfg: ProducerConfig{}},
		{name: "negative timeout", cfg: ProducerConfig{Brokers: []string{"127.0.0.1:1"}, DeliveryTimeout: -1}},
		{name: "negative linger", cfg: ProducerConfig{Brokers: []string{"127.0.0.1:1"}, Linger: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if p, err := NewProducer(tt.cfg); err == nil {
				p.Close()
				t.Errorf("NewProducer(%+v) succeeded, want an error", tt.cfg)
			}
		})
	}
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %s: %v", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port of %s: %v", addr, err)
	}
	return port
}

// A topic that does not exist is not created by the producer (it would get
// the broker's defaults, not infinite retention): the append fails.
func TestProducerDoesNotCreateTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	p := newProducer(t, b.Addrs(), 5*time.Second)
	topic := randomID("missing")

	if _, err := p.AppendTo(testContext(t), topic, envelope(randomID("int"), domain.TaskCreated, "")); err == nil {
		t.Fatal("append to a missing topic succeeded")
	}
	if _, err := EndOffsets(testContext(t), b.Addrs(), topic); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("end offsets error = %v, want ErrUnknownTopic: the topic must not exist", err)
	}
}

// An event with the largest payload ingest accepts fits one record; one the
// log cannot take fails as too large (for a 413), not as an outage.
func TestProducerRecordSizeLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	payload := func(n int) string { return `{"a":"` + strings.Repeat("x", n-8) + `"}` }
	e := envelope(randomID("int_"+strings.Repeat("i", 200)), domain.DocumentUploaded, payload(MaxPayloadBytes))
	e.EventID = strings.Repeat("e", 256)
	e.CorrelationID = strings.Repeat("c", 256)
	if len(e.Payload) != MaxPayloadBytes {
		t.Fatalf("payload of %d bytes", len(e.Payload))
	}
	mustAppend(t, p, e)
	big := envelope(randomID("int"), domain.DocumentUploaded, payload(maxBatchBytes))
	if _, err := p.Append(testContext(t), big); !errors.Is(err, ingest.ErrRecordTooLarge) {
		t.Fatalf("append of a %d-byte payload = %v, want ingest.ErrRecordTooLarge", len(big.Payload), err)
	}
}

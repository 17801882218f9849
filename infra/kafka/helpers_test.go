package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// startBroker starts an embedded broker on dir (a new temp dir if empty) and
// closes it when the test ends.
func startBroker(t *testing.T, dir string, port int) *Broker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := StartBroker(BrokerConfig{DataDir: dir, Port: port})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// testPartitions is the partition count of topics made by ensureTopics.
const testPartitions = 6

// ensureTopics creates every topic of the service with testPartitions.
func ensureTopics(t *testing.T, brokers []string) {
	t.Helper()
	if _, err := EnsureTopics(testContext(t), brokers, domain.AllTopics, TopicSpec{Partitions: testPartitions}); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
}

// newProducer returns a producer closed when the test ends.
func newProducer(t *testing.T, brokers []string, timeout time.Duration) *Producer {
	t.Helper()
	p, err := NewProducer(ProducerConfig{Brokers: brokers, DeliveryTimeout: timeout})
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// testContext is bounded so that a hung broker fails the test instead of
// the whole run.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// randomID returns prefix followed by random hex, to isolate tests.
func randomID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// envelope returns a valid envelope; payload "" gets a default with
// irregular whitespace, which must survive the round trip.
func envelope(integration string, typ domain.EventType, payload string) domain.Envelope {
	if payload == "" {
		payload = "{ \"id\" : \"TX-1\",\n\t\"amount\":  12.50 }"
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	return domain.Envelope{
		Schema:        domain.SchemaV1,
		EventID:       randomID("evt"),
		IntegrationID: integration,
		Type:          typ,
		OccurredAt:    now.Add(-time.Minute),
		ReceivedAt:    now,
		Source:        domain.SourceWebhook,
		Priority:      typ.Priority(),
		Payload:       json.RawMessage(payload),
	}
}

// mustAppend appends e and fails the test on error.
func mustAppend(t *testing.T, p *Producer, e domain.Envelope) ingest.Position {
	t.Helper()
	pos, err := p.Append(testContext(t), e)
	if err != nil {
		t.Fatalf("append %s: %v", e.EventID, err)
	}
	return pos
}

// readRecord fetches the record at pos with a plain client.
func readRecord(t *testing.T, brokers []string, pos ingest.Position) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			pos.Topic: {pos.Partition: kgo.NewOffset().At(pos.Offset)},
		}),
	)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	defer cl.Close()
	ctx := testContext(t)
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch %+v: %v", pos, err)
		}
		for _, r := range fs.Records() {
			if r.Offset == pos.Offset {
				return r
			}
		}
	}
}

// header returns the value of header key, and whether it was present once.
func header(r *kgo.Record, key string) (string, bool) {
	var v []string
	for _, h := range r.Headers {
		if h.Key == key {
			v = append(v, string(h.Value))
		}
	}
	if len(v) != 1 {
		return strings.Join(v, ","), false
	}
	return v[0], true
}

// javaPartition is the partition Kafka's Java client picks for key among n
// partitions: murmur2 of the key, sign bit cleared, modulo n. It is written
// out here, independent of franz-go, so the test catches a partitioner that
// is not the Java one.
func javaPartition(key []byte, n int32) int32 {
	return int32((murmur2(key) & 0x7fffffff) % uint32(n))
}

// murmur2 is org.apache.kafka.common.utils.Utils.murmur2.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

func TestMurmur2MatchesJava(t *testing.T) {
	t.Parallel()
	// Vectors from Kafka's UtilsTest.testMurmur2.
	tests := []struct {
		name string
		in   string
		want int32
	}{
		{name: "two bytes", in: "21", want: -973932308},
		{name: "six bytes", in: "foobar", want: -790332482},
		{name: "long", in: "a-little-bit-long-string", want: -985981536},
		{name: "longer", in: "a-little-bit-longer-string", want: -1486304829},
		{name: "longest", in: "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", want: -58897971},
		{name: "three bytes", in: "abc", want: 479470107},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := int32(murmur2([]byte(tt.in))); got != tt.want {
				t.Errorf("murmur2(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

package kafka

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/roisystems/softprohub/domain"
)

func TestEnsureTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)

	tests := []struct {
		name           string
		spec           TopicSpec
		wantPartitions int
	}{
		{name: "explicit partitions", spec: TopicSpec{Partitions: 3, Replication: 1}, wantPartitions: 3},
		{name: "broker default partitions", spec: TopicSpec{Partitions: -1, Replication: -1}, wantPartitions: 12},
		{name: "zero spec takes defaults", spec: TopicSpec{}, wantPartitions: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			topics := []string{randomID("a"), randomID("b")}

			created, err := EnsureTopics(testContext(t), b.Addrs(), topics, tt.spec)
			if err != nil {
				t.Fatalf("ensure topics: %v", err)
			}
			if !slices.Equal(created, topics) {
				t.Errorf("created %v, want %v", created, topics)
			}

			again, err := EnsureTopics(testContext(t), b.Addrs(), topics, TopicSpec{Partitions: 1})
			if err != nil {
				t.Fatalf("ensure existing topics: %v", err)
			}
			if len(again) != 0 {
				t.Errorf("second call created %v, want nothing", again)
			}

			offs, err := EndOffsets(testContext(t), b.Addrs(), topics...)
			if err != nil {
				t.Fatalf("end offsets: %v", err)
			}
			for _, topic := range topics {
				if got := len(offs[topic]); got != tt.wantPartitions {
					t.Errorf("%s has %d partitions, want %d (left alone by the second call)", topic, got, tt.wantPartitions)
				}
				if got := offs.Total(topic); got != 0 {
					t.Errorf("%s holds %d records, want 0", topic, got)
				}
			}
			assertInfiniteRetention(t, b.Addrs(), topics...)
		})
	}
}

// Only the missing topics are created, and reported.
func TestEnsureTopicsCreatesOnlyMissing(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	existing, missing := randomID("old"), randomID("new")
	if _, err := EnsureTopics(testContext(t), b.Addrs(), []string{existing}, TopicSpec{Partitions: 2}); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}

	created, err := EnsureTopics(testContext(t), b.Addrs(), []string{existing, missing}, TopicSpec{Partitions: 4})
	if err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	if !slices.Equal(created, []string{missing}) {
		t.Errorf("created %v, want [%s]", created, missing)
	}
}

func TestEndOffsets(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)

	integrations := []string{randomID("a"), randomID("b"), randomID("c")}
	want := map[int32]int64{}
	for i := range 10 {
		in := integrations[i%len(integrations)]
		pos := mustAppend(t, p, envelope(in, domain.ContactUpdated, ""))
		want[pos.Partition] = pos.Offset + 1
	}

	offs, err := EndOffsets(testContext(t), b.Addrs(), domain.TopicContacts, domain.TopicTasks)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	if got := offs.Total(domain.TopicContacts); got != 10 {
		t.Errorf("total = %d, want 10", got)
	}
	if got := offs.Total(domain.TopicTasks); got != 0 {
		t.Errorf("tasks total = %d, want 0", got)
	}
	if got := len(offs[domain.TopicTasks]); got != testPartitions {
		t.Errorf("tasks lists %d partitions, want %d", got, testPartitions)
	}
	for part, end := range want {
		if got := offs[domain.TopicContacts][part]; got != end {
			t.Errorf("partition %d ends at %d, want %d", part, got, end)
		}
	}
	if got := offs.Total("absent"); got != 0 {
		t.Errorf("total of a topic not listed = %d, want 0", got)
	}

	if _, err := EndOffsets(testContext(t), b.Addrs(), domain.TopicContacts, randomID("absent")); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("end offsets of a missing topic: error %v, want ErrUnknownTopic", err)
	}
}

// assertInfiniteRetention fails the test unless every topic has
// retention.ms and retention.bytes set to -1 on the topic itself.
func assertInfiniteRetention(t *testing.T, brokers []string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	adm := kadm.NewClient(cl)
	defer adm.Close()
	rcs, err := adm.DescribeTopicConfigs(testContext(t), topics...)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	for _, topic := range topics {
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatalf("describe %s: %v", topic, err)
		}
		for _, key := range []string{"retention.ms", "retention.bytes"} {
			var found bool
			for _, c := range rc.Configs {
				if c.Key != key {
					continue
				}
				found = true
				if c.MaybeValue() != "-1" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
					t.Errorf("%s %s = %q (source %v), want -1 set on the topic", topic, key, c.MaybeValue(), c.Source)
				}
			}
			if !found {
				t.Errorf("%s: %s not described", topic, key)
			}
		}
	}
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
)

// collect runs Tail and returns the event ids it passed to fn, sorted.
func collect(t *testing.T, cfg TailConfig) []string {
	t.Helper()
	var ids []string
	err := Tail(testContext(t), cfg, func(r Record) error {
		if r.Err != nil {
			t.Errorf("record %s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, r.Err)
			return nil
		}
		ids = append(ids, r.Envelope.EventID)
		return nil
	})
	if err != nil {
		t.Fatalf("tail: %v", err)
	}
	slices.Sort(ids)
	return ids
}

func TestTailFilters(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	alpha, beta := randomID("alpha"), randomID("beta")
	log, from := appendEarlyThenLate(t, b.Addrs(), func(add func(string, domain.EventType)) {
		for range 3 {
			add(alpha, domain.TransactionCreated)
			add(beta, domain.TransactionCreated)
			add(alpha, domain.ContactCreated)
			add(beta, domain.TaskCompleted)
		}
	}, func(add func(string, domain.EventType)) {
		for range 2 {
			add(alpha, domain.TransactionStatusChanged)
			add(beta, domain.ContactCreated)
			add(alpha, domain.DocumentUploaded)
		}
	})
	ids := log.ids
	tests := []struct {
		name string
		cfg  TailConfig
		want []string
	}{
		{
			name: "everything",
			cfg:  TailConfig{},
			want: ids(func(appended) bool { return true }),
		},
		{
			name: "one integration",
			cfg:  TailConfig{IntegrationID: alpha},
			want: ids(func(a appended) bool { return a.env.IntegrationID == alpha }),
		},
		{
			name: "types across topics",
			cfg:  TailConfig{Types: []domain.EventType{domain.TransactionCreated, domain.ContactCreated}},
			want: ids(func(a appended) bool {
				return a.env.Type == domain.TransactionCreated || a.env.Type == domain.ContactCreated
			}),
		},
		{
			name: "integration and type",
			cfg:  TailConfig{IntegrationID: beta, Types: []domain.EventType{domain.ContactCreated}},
			want: ids(func(a appended) bool { return a.env.IntegrationID == beta && a.env.Type == domain.ContactCreated }),
		},
		{
			name: "from a time",
			cfg:  TailConfig{From: from},
			want: ids(func(a appended) bool { return !a.early }),
		},
		{
			name: "from a time, one integration",
			cfg:  TailConfig{From: from, IntegrationID: alpha},
			want: ids(func(a appended) bool { return !a.early && a.env.IntegrationID == alpha }),
		},
		{
			name: "from the future",
			cfg:  TailConfig{From: time.Now().Add(time.Hour)},
			want: nil,
		},
		{
			name: "one topic",
			cfg:  TailConfig{Topics: []string{domain.TopicContacts}},
			want: ids(func(a appended) bool { return a.env.Type.Topic() == domain.TopicContacts }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Brokers = b.Addrs()
			if got := collect(t, cfg); !slices.Equal(got, tt.want) {
				t.Errorf("read %d events %v,\nwant %d %v", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

// Without Follow, Tail stops at the end offsets it listed first, even while
// records keep arriving, and passes each partition's records in order.
func TestTailStopsAtEnd(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	integration := randomID("int")
	const n = 500
	for range n {
		mustAppend(t, p, envelope(integration, domain.TaskCreated, ""))
	}

	var read int
	last := int64(-1)
	err := Tail(testContext(t), TailConfig{Brokers: b.Addrs()}, func(r Record) error {
		if r.Offset != last+1 {
			t.Errorf("offset %d after %d, want consecutive offsets", r.Offset, last)
		}
		last = r.Offset
		read++
		// Appended after Tail listed the end: must not be read.
		mustAppend(t, p, envelope(integration, domain.TaskCreated, ""))
		return nil
	})
	if err != nil {
		t.Fatalf("tail: %v", err)
	}
	if read != n {
		t.Errorf("read %d records, want the %d there were when Tail started", read, n)
	}
}

func TestTailEmptyLog(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	if got := collect(t, TailConfig{Brokers: b.Addrs()}); len(got) != 0 {
		t.Errorf("read %v from an empty log", got)
	}
}

func TestTailFollow(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	integration := randomID("int")
	mustAppend(t, p, envelope(integration, domain.ContactCreated, ""))

	errEnough := errors.New("enough")
	const want = 4
	seen := make(chan string, want)
	done := make(chan error, 1)
	go func() {
		var n int
		done <- Tail(testContext(t), TailConfig{Brokers: b.Addrs(), IntegrationID: integration, Follow: true}, func(r Record) error {
			seen <- r.Envelope.EventID
			if n++; n == want {
				return errEnough
			}
			return nil
		})
	}()
	<-seen // the record from before Tail started
	for range want - 1 {
		mustAppend(t, p, envelope(integration, domain.ContactCreated, ""))
	}
	if err := <-done; !errors.Is(err, errEnough) {
		t.Errorf("tail returned %v, want the callback's error", err)
	}

}

// Ending ctx is how a follow ends: Tail returns nil, whether ctx ends
// while it waits for records or before it starts. Without Follow, a ctx
// that ends before the end offsets are read is still an error.
func TestTailFollowEndsWithItsContext(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	integration := randomID("int")
	mustAppend(t, p, envelope(integration, domain.ContactCreated, ""))

	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	seen := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- Tail(ctx, TailConfig{Brokers: b.Addrs(), IntegrationID: integration, Follow: true}, func(Record) error {
			seen <- struct{}{}
			return nil
		})
	}()
	<-seen
	time.Sleep(100 * time.Millisecond) // waiting for more
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow cancelled while waiting returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end within 10s of its context")
	}

	for _, cause := range []string{"cancelled", "past its deadline"} {
		ctx, cancel := context.WithCancel(testContext(t))
		if cause == "past its deadline" {
			ctx, cancel = context.WithDeadline(testContext(t), time.Now().Add(-time.Second))
		}
		cancel()
		if err := Tail(ctx, TailConfig{Brokers: b.Addrs(), Follow: true}, func(Record) error { return nil }); err != nil {
			t.Errorf("follow with a context %s before it starts returned %v, want nil", cause, err)
		}
		err := Tail(ctx, TailConfig{Brokers: b.Addrs()}, func(Record) error { return nil })
		if !errors.Is(err, ctx.Err()) {
			t.Errorf("tail without follow with a context %s returned %v, want %v", cause, err, ctx.Err())
		}
	}
}

// A topic name the broker does not have, that is not one of the
// service's, is an error naming it in both modes, before any record is
// passed on; a topic of the service not created yet is skipped, unless
// the broker has none of those asked, which is an error too. A topic the
// broker has is read whoever made it.
func TestTailUnknownTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	// Only two of the service's topics, and one of another's.
	raw := randomID("raw")
	if _, err := EnsureTopics(testContext(t), b.Addrs(), []string{domain.TopicTasks, domain.TopicOther, raw}, TopicSpec{Partitions: 2}); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	p := newProducer(t, b.Addrs(), 5*time.Second)
	integration := randomID("int")
	task := envelope(integration, domain.TaskCreated, "")
	mustAppend(t, p, task)
	other := envelope(integration, domain.EventType("custom.thing"), "")
	if _, err := p.AppendTo(testContext(t), domain.TopicOther, other); err != nil {
		t.Fatalf("append: %v", err)
	}
	if _, err := p.AppendTo(testContext(t), raw, other); err != nil {
		t.Fatalf("append: %v", err)
	}

	bogus := "bogus.topic"
	for _, follow := range []bool{false, true} {
		for _, tt := range []struct {
			topics []string
			want   []string // in the error
		}{
			{[]string{bogus}, []string{`unknown topic "bogus.topic"`}},
			{[]string{bogus, domain.TopicOther}, []string{`unknown topic "bogus.topic"`}},
			{[]string{domain.TopicOther, "nope\n1", domain.TopicTasks, bogus}, []string{`unknown topic "nope\n1", "bogus.topic"`}},
			{[]string{domain.TopicContacts}, []string{`none of "softpro.contacts.v1" is on the broker yet`, "unknown topic"}},
			{[]string{domain.TopicContacts, domain.TopicSync}, []string{`none of "softpro.contacts.v1", "softpro.sync.v1"`}},
		} {
			ctx, cancel := context.WithTimeout(testContext(t), 10*time.Second)
			var read int
			err := Tail(ctx, TailConfig{Brokers: b.Addrs(), Topics: tt.topics, Follow: follow}, func(Record) error {
				read++
				return nil
			})
			cancel()
			if !errors.Is(err, ErrUnknownTopic) || read != 0 {
				t.Errorf("follow %t, topics %q: %v after %d records, want an ErrUnknownTopic and none", follow, tt.topics, err, read)
				continue
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("follow %t, topics %q: %q, want it to say %s", follow, tt.topics, err, w)
				}
			}
		}
	}

	// A service topic not created yet is skipped; another's topic the
	// broker has is read.
	got := collect(t, TailConfig{Brokers: b.Addrs(), Topics: []string{domain.TopicContacts, domain.TopicTasks, raw}})
	want := []string{task.EventID, other.EventID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("contacts (not created), tasks and %s: read %v, want %v", raw, got, want)
	}
	// So are the default topics, some of which are not created.
	got = collect(t, TailConfig{Brokers: b.Addrs()})
	want = []string{task.EventID, other.EventID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the default topics: read %v, want %v", got, want)
	}
}

// Without any of the event topics on the broker, tail says so in both
// modes, instead of printing nothing.
func TestTailNoTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	for _, follow := range []bool{false, true} {
		err := Tail(testContext(t), TailConfig{Brokers: b.Addrs(), Follow: follow}, func(Record) error { return nil })
		if !errors.Is(err, ErrUnknownTopic) || !strings.Contains(err.Error(), "none of") {
			t.Errorf("follow %t on a broker without topics: %v, want none of the topics named", follow, err)
		}
	}
}

// A value that is not an envelope reaches fn with Err set instead of being
// dropped.
func TestTailKeepsUndecodableRecords(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	topic := randomID("raw")
	if _, err := EnsureTopics(testContext(t), b.Addrs(), []string{topic}, TopicSpec{Partitions: 1}); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	defer cl.Close()
	p := newProducer(t, b.Addrs(), 5*time.Second)
	good := envelope("int-1", domain.TaskCreated, "")
	if _, err := p.AppendTo(testContext(t), topic, good); err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := cl.ProduceSync(testContext(t), &kgo.Record{Topic: topic, Key: []byte("int-1"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatalf("produce raw: %v", err)
	}

	tests := []struct {
		name    string
		cfg     TailConfig
		wantBad int
		wantOK  int
	}{
		{name: "no filter", cfg: TailConfig{}, wantBad: 1, wantOK: 1},
		{name: "type filter cannot rule it out", cfg: TailConfig{Types: []domain.EventType{domain.TaskCreated}}, wantBad: 1, wantOK: 1},
		{name: "key filter rules it out", cfg: TailConfig{IntegrationID: "int-2"}, wantBad: 0, wantOK: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Brokers, cfg.Topics = b.Addrs(), []string{topic}
			var bad, ok int
			err := Tail(testContext(t), cfg, func(r Record) error {
				switch {
				case r.Err != nil && errors.Is(r.Err, domain.ErrInvalidEnvelope) && r.Offset == 1 && r.Key == "int-1":
					bad++
				case r.Err == nil && r.Envelope.EventID == good.EventID:
					ok++
				default:
					t.Errorf("unexpected record %+v", r)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("tail: %v", err)
			}
			if bad != tt.wantBad || ok != tt.wantOK {
				t.Errorf("read %d undecodable and %d good records, want %d and %d", bad, ok, tt.wantBad, tt.wantOK)
			}
		})
	}
}

// BenchmarkTail reads a log of 20,000 events spread over every partition
// of one topic: go test -run '^$' -bench Tail ./infra/kafka/
func BenchmarkTail(b *testing.B) {
	br, err := StartBroker(BrokerConfig{DataDir: b.TempDir()})
	if err != nil {
		b.Fatalf("start broker: %v", err)
	}
	defer br.Close()
	ctx := context.Background()
	if _, err := EnsureTopics(ctx, br.Addrs(), []string{domain.TopicTasks}, TopicSpec{Partitions: 12}); err != nil {
		b.Fatalf("ensure topics: %v", err)
	}
	p, err := NewProducer(ProducerConfig{Brokers: br.Addrs()})
	if err != nil {
		b.Fatalf("new producer: %v", err)
	}
	defer p.Close()
	const n = 20000
	errs := make(chan error, n)
	sem := make(chan struct{}, 256)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := p.Append(ctx, envelope(fmt.Sprintf("int-%d", i%500), domain.TaskCreated, ""))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatalf("append: %v", err)
		}
	}

	b.ResetTimer()
	for b.Loop() {
		var read int
		if err := Tail(ctx, TailConfig{Brokers: br.Addrs(), Topics: []string{domain.TopicTasks}}, func(Record) error {
			read++
			return nil
		}); err != nil {
			b.Fatalf("tail: %v", err)
		}
		if read != n {
			b.Fatalf("read %d records, want %d", read, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// appended is an event a test appended, and whether it came before the
// test's from time.
type appended struct {
	env   domain.Envelope
	early bool
}

type appendedLog []appended

// ids returns the sorted event ids of the events keep accepts.
func (l appendedLog) ids(keep func(a appended) bool) []string {
	var out []string
	for _, a := range l {
		if keep(a) {
			out = append(out, a.env.EventID)
		}
	}
	slices.Sort(out)
	return out
}

// appendEarlyThenLate appends the events early adds, waits for from, the
// first millisecond after them (record timestamps have millisecond
// precision), and appends the events late adds.
func appendEarlyThenLate(t *testing.T, addrs []string, early, late func(add func(integration string, typ domain.EventType))) (appendedLog, time.Time) {
	t.Helper()
	p := newProducer(t, addrs, 5*time.Second)
	var log appendedLog
	isEarly := true
	add := func(integration string, typ domain.EventType) {
		e := envelope(integration, typ, "")
		mustAppend(t, p, e)
		log = append(log, appended{env: e, early: isEarly})
	}
	early(add)
	from := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(time.Until(from))
	isEarly = false
	late(add)
	return log, from
}

// From within a record's millisecond leaves it out, as a replay's window
// does: a time is after every record stamped before it, to the
// millisecond the log keeps.
func TestTailFromWithinARecordsMillisecond(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	e := envelope(randomID("ms"), domain.TaskCreated, "")
	mustAppend(t, p, e)
	var stamped time.Time
	if err := Tail(testContext(t), TailConfig{Brokers: b.Addrs(), IntegrationID: e.IntegrationID}, func(r Record) error {
		stamped = r.Timestamp
		return nil
	}); err != nil || stamped.IsZero() {
		t.Fatalf("tail: %v, stamped %v", err, stamped)
	}
	if got := collect(t, TailConfig{Brokers: b.Addrs(), IntegrationID: e.IntegrationID, From: stamped}); len(got) != 1 {
		t.Fatalf("from the record's own millisecond: %v, want it", got)
	}
	if got := collect(t, TailConfig{Brokers: b.Addrs(), IntegrationID: e.IntegrationID, From: stamped.Add(500 * time.Microsecond)}); len(got) != 0 {
		t.Fatalf("from within the record's millisecond: %v, want none", got)
	}
}

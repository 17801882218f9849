package kafka

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// Every acknowledged record, and the topics with their configs, survive a
// Close and a StartBroker on the same data dir and port.
func TestBrokerRestartKeepsLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		syncWrites bool
	}{
		{name: "page cache writes"},
		{name: "sync writes", syncWrites: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b, err := StartBroker(BrokerConfig{DataDir: dir, SyncWrites: tt.syncWrites})
			if err != nil {
				t.Fatalf("start broker: %v", err)
			}
			t.Cleanup(b.Close)
			addrs := b.Addrs()
			port := portOf(t, addrs[0])
			ensureTopics(t, addrs)
			p := newProducer(t, addrs, 5*time.Second)

			integration := randomID("int")
			var appended []domain.Envelope
			var positions []ingest.Position
			for _, typ := range []domain.EventType{domain.TransactionCreated, domain.DocumentUploaded, domain.TaskCreated, domain.TransactionUpdated} {
				e := envelope(integration, typ, "")
				appended = append(appended, e)
				positions = append(positions, mustAppend(t, p, e))
			}
			before, err := EndOffsets(testContext(t), addrs)
			if err != nil {
				t.Fatalf("end offsets: %v", err)
			}
			b.Close()

			b2, err := StartBroker(BrokerConfig{DataDir: dir, Port: port, SyncWrites: tt.syncWrites})
			if err != nil {
				t.Fatalf("restart broker: %v", err)
			}
			t.Cleanup(b2.Close)
			if got, want := b2.Addrs(), addrs; len(got) != 1 || got[0] != want[0] {
				t.Fatalf("restarted on %v, want %v", got, want)
			}

			after, err := EndOffsets(testContext(t), addrs)
			if err != nil {
				t.Fatalf("end offsets after restart: %v", err)
			}
			for _, topic := range domain.AllTopics {
				if len(after[topic]) != testPartitions {
					t.Errorf("%s has %d partitions after restart, want %d", topic, len(after[topic]), testPartitions)
				}
				for part, off := range before[topic] {
					if after[topic][part] != off {
						t.Errorf("%s[%d] ends at %d after restart, want %d", topic, part, after[topic][part], off)
					}
				}
			}
			assertInfiniteRetention(t, addrs, domain.AllTopics...)

			var got []Record
			err = Tail(testContext(t), TailConfig{Brokers: addrs, IntegrationID: integration}, func(r Record) error {
				got = append(got, r)
				return nil
			})
			if err != nil {
				t.Fatalf("tail: %v", err)
			}
			if len(got) != len(appended) {
				t.Fatalf("read %d records after restart, want %d", len(got), len(appended))
			}
			byID := make(map[string]Record)
			for _, r := range got {
				byID[r.Envelope.EventID] = r
			}
			for i, e := range appended {
				r, ok := byID[e.EventID]
				if !ok {
					t.Errorf("event %s lost across restart", e.EventID)
					continue
				}
				if pos := (ingest.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}); pos != positions[i] {
					t.Errorf("event %s at %+v after restart, want %+v", e.EventID, pos, positions[i])
				}
			}

			// The producer from before the restart keeps appending after
			// its broker returns, right behind the records it wrote.
			next := mustAppend(t, p, envelope(integration, domain.TransactionCreated, ""))
			if want := (ingest.Position{Topic: positions[0].Topic, Partition: positions[0].Partition, Offset: positions[3].Offset + 1}); next != want {
				t.Errorf("append after restart at %+v, want %+v", next, want)
			}
		})
	}
}

func TestBrokerDataDirIsExclusive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startBroker(t, dir, 0)

	b, err := StartBroker(BrokerConfig{DataDir: dir})
	if !errors.Is(err, ErrDataDirInUse) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("second broker on the same data dir: error %v, want ErrDataDirInUse", err)
	}
}

func TestStartBrokerValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  BrokerConfig
	}{
		{name: "negative port", cfg: BrokerConfig{Port: -1}},
		{name: "port too large", cfg: BrokerConfig{Port: 70000}},
		{name: "negative partitions", cfg: BrokerConfig{Partitions: -3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if b, err := StartBroker(tt.cfg); err == nil {
				b.Close()
				t.Errorf("StartBroker(%+v) succeeded, want an error", tt.cfg)
			}
		})
	}
}

// A broker that dies without Close (a crash of the process) leaves behind
// what a copy of its data dir taken while it runs holds: every record
// acknowledged so far is there, because each batch is written to its
// segment file before the produce is acknowledged.
func TestBrokerCrashKeepsAcknowledgedRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startBroker(t, dir, 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	integration := randomID("int")
	var ids []string
	for range 20 {
		e := envelope(integration, domain.DocumentUpdated, "")
		mustAppend(t, p, e)
		ids = append(ids, e.EventID)
	}

	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatalf("copy data dir: %v", err)
	}
	b2 := startBroker(t, crashed, 0)

	got := collect(t, TailConfig{Brokers: b2.Addrs(), IntegrationID: integration})
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("after a crash read %v, want %v", got, ids)
	}
}

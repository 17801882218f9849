package kafka

import (
	"slices"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// scanIDs runs Scan over req and returns the event ids it passed to fn,
// sorted, checking that each batch holds at most the batch size, of one
// partition number, within the bounds, and that the records of a
// partition number come in append order: each partition's in offset
// order, merged across topics by append time, then topic name.
func scanIDs(t *testing.T, r *ReplayReader, req projections.ScanRequest) []string {
	t.Helper()
	var ids []string
	lastOffset := map[projections.Partition]int64{}
	last := map[int32]projections.ScannedRecord{}
	err := r.Scan(testContext(t), req, func(recs []projections.ScannedRecord) error {
		if len(recs) == 0 || len(recs) > max(req.BatchSize, 1) {
			t.Errorf("batch of %d records, want 1 to %d", len(recs), max(req.BatchSize, 1))
		}
		for _, s := range recs {
			if s.Partition.Partition != recs[0].Partition.Partition {
				t.Errorf("batch mixes partition numbers: %v after %v", s.Partition, recs[0].Partition)
			}
			if prev, ok := lastOffset[s.Partition]; ok && s.Offset <= prev {
				t.Errorf("%v@%d after its offset %d", s.Partition, s.Offset, prev)
			}
			lastOffset[s.Partition] = s.Offset
			if prev, ok := last[s.Partition.Partition]; ok {
				if c := s.Timestamp.Compare(prev.Timestamp); c < 0 || c == 0 && s.Partition.Topic < prev.Partition.Topic {
					t.Errorf("%v@%d (appended %v) after %v@%d (appended %v)", s.Partition, s.Offset, s.Timestamp, prev.Partition, prev.Offset, prev.Timestamp)
				}
			}
			last[s.Partition.Partition] = s
			if s.Offset < req.Start[s.Partition] || s.Offset >= req.End[s.Partition] {
				t.Errorf("%v@%d is outside [%d, %d)", s.Partition, s.Offset, req.Start[s.Partition], req.End[s.Partition])
			}
			if s.Err != nil {
				t.Errorf("%v@%d: %v", s.Partition, s.Offset, s.Err)
				continue
			}
			ids = append(ids, s.Envelope.EventID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	slices.Sort(ids)
	return ids
}

// Scan hands over only the records of the integration and the types asked
// for, and Bounds with a from or a to time starts or ends each partition at
// the first record appended at or after it.
func TestReplayReaderScanFiltersAndBounds(t *testing.T) {
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
			add(alpha, domain.TaskCompleted)
		}
	}, func(add func(string, domain.EventType)) {
		for range 2 {
			add(alpha, domain.TransactionStatusChanged)
			add(beta, domain.ContactCreated)
			add(alpha, domain.DocumentUploaded)
			add(beta, domain.TransactionCreated)
		}
	})
	ids := log.ids
	r := NewReplayReader(b.Addrs())
	bounds := func(from, to time.Time) projections.Bounds {
		t.Helper()
		bs, err := r.Bounds(testContext(t), domain.EventTopics, from, to)
		if err != nil {
			t.Fatalf("bounds: %v", err)
		}
		return bs
	}
	all := bounds(time.Time{}, time.Time{})
	if n := all.Records(); n != int64(len(log)) {
		t.Fatalf("bounds span %d offsets, want the %d records appended", n, len(log))
	}

	tests := []struct {
		name string
		req  projections.ScanRequest
		want []string
	}{
		{
			name: "everything",
			req:  projections.ScanRequest{Bounds: all, BatchSize: 2},
			want: ids(func(appended) bool { return true }),
		},
		{
			name: "one integration",
			req:  projections.ScanRequest{Bounds: all, IntegrationID: alpha, BatchSize: 100},
			want: ids(func(a appended) bool { return a.env.IntegrationID == alpha }),
		},
		{
			name: "types across topics",
			req:  projections.ScanRequest{Bounds: all, Types: []domain.EventType{domain.TransactionCreated, domain.ContactCreated}},
			want: ids(func(a appended) bool {
				return a.env.Type == domain.TransactionCreated || a.env.Type == domain.ContactCreated
			}),
		},
		{
			name: "integration and type",
			req:  projections.ScanRequest{Bounds: all, IntegrationID: beta, Types: []domain.EventType{domain.TaskCompleted}},
			want: ids(func(a appended) bool { return a.env.IntegrationID == beta && a.env.Type == domain.TaskCompleted }),
		},
		{
			name: "from a time",
			req:  projections.ScanRequest{Bounds: bounds(from, time.Time{}), BatchSize: 3},
			want: ids(func(a appended) bool { return !a.early }),
		},
		{
			name: "from a time, one integration",
			req:  projections.ScanRequest{Bounds: bounds(from, time.Time{}), IntegrationID: alpha},
			want: ids(func(a appended) bool { return !a.early && a.env.IntegrationID == alpha }),
		},
		{
			name: "up to a time",
			req:  projections.ScanRequest{Bounds: bounds(time.Time{}, from), BatchSize: 3},
			want: ids(func(a appended) bool { return a.early }),
		},
		{
			name: "from the future",
			req:  projections.ScanRequest{Bounds: bounds(time.Now().Add(time.Hour), time.Time{})},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := scanIDs(t, r, tt.req); !slices.Equal(got, tt.want) {
				t.Errorf("scanned %d events %v,\nwant %d %v", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

// Topics with different partition counts put an integration's records
// under different partition numbers: Scan still hands them over in append
// order across topics, in a scan of every integration and of one.
func TestReplayReaderScanKeepsAppendOrderAcrossPartitionCounts(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	for topic, n := range map[string]int32{domain.TopicTransactions: 3, domain.TopicContacts: 2} {
		if _, err := EnsureTopics(testContext(t), b.Addrs(), []string{topic}, TopicSpec{Partitions: n}); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReplayReader(b.Addrs())
	var id string
	for id == "" || r.PartitionOf(id, 3) == r.PartitionOf(id, 2) {
		id = randomID("split")
	}
	other := randomID("other")
	p := newProducer(t, b.Addrs(), 5*time.Second)
	var want []string
	for i := range 12 {
		typ := domain.TransactionCreated
		if i%3 != 0 {
			typ = domain.ContactCreated
		}
		e := envelope(id, typ, "")
		mustAppend(t, p, e)
		want = append(want, e.EventID)
		mustAppend(t, p, envelope(other, typ, ""))
		time.Sleep(2 * time.Millisecond) // append times apart
	}
	topics := []string{domain.TopicTransactions, domain.TopicContacts}
	all, err := r.Bounds(testContext(t), topics, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []projections.ScanRequest{
		{Bounds: all, BatchSize: 5},
		{Bounds: all, IntegrationID: id, BatchSize: 5},
	} {
		var got []string
		err := r.Scan(testContext(t), req, func(recs []projections.ScannedRecord) error {
			for _, s := range recs {
				if s.Err == nil && s.Envelope.IntegrationID == id {
					got = append(got, s.Envelope.EventID)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("scan (integration %q) handed over %v,\nwant append order %v", req.IntegrationID, got, want)
		}
	}
}

// Record timestamps are whole milliseconds: a time within a record's
// millisecond but after its start is after the record, not at it.
func TestReplayReaderBoundsAtATimeWithinARecordsMillisecond(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 10*time.Second)
	id := randomID("int")
	mustAppend(t, p, envelope(id, domain.TransactionCreated, ""))
	r := NewReplayReader(b.Addrs())
	all, err := r.Bounds(testContext(t), domain.EventTopics, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var at time.Time
	if err := r.Scan(testContext(t), projections.ScanRequest{Bounds: all, IntegrationID: id}, func(recs []projections.ScannedRecord) error {
		at = recs[0].Timestamp
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t              time.Time
		before, atOrOn int64
	}{
		{at, 0, 1},
		{at.Add(500 * time.Microsecond), 1, 0},
		{at.Add(time.Millisecond), 1, 0},
	} {
		upTo, err := r.Bounds(testContext(t), domain.EventTopics, time.Time{}, tc.t)
		if err != nil {
			t.Fatal(err)
		}
		from, err := r.Bounds(testContext(t), domain.EventTopics, tc.t, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if upTo.Records() != tc.before || from.Records() != tc.atOrOn {
			t.Errorf("record at %s, bounds at %s: %d before, %d at or after; want %d and %d",
				at.Format(time.RFC3339Nano), tc.t.Format(time.RFC3339Nano), upTo.Records(), from.Records(), tc.before, tc.atOrOn)
		}
	}
}

// Times before 1970 are before every record: Kafka reads a negative
// millisecond as a special offset (-1 the end, -2 the start) or refuses
// it, so they must not reach it as times.
func TestReplayReaderBoundsBefore1970(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 10*time.Second)
	id := randomID("int")
	for range 3 {
		mustAppend(t, p, envelope(id, domain.TransactionCreated, ""))
	}
	r := NewReplayReader(b.Addrs())
	epoch := time.Unix(0, 0).UTC()
	for _, at := range []time.Time{
		epoch.Add(-time.Millisecond),       // -1 ms: "the end"
		epoch.Add(-2 * time.Millisecond),   // -2 ms: "the start"
		epoch.Add(-3 * time.Millisecond),   // -3 ms: "the largest timestamp"
		epoch.Add(-500 * time.Microsecond), // rounds up to 0 ms
		epoch.Add(-time.Second),
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		from, err := r.Bounds(testContext(t), domain.EventTopics, at, time.Time{})
		if err != nil {
			t.Fatalf("from %s: %v", at.Format(time.RFC3339Nano), err)
		}
		upTo, err := r.Bounds(testContext(t), domain.EventTopics, time.Time{}, at)
		if err != nil {
			t.Fatalf("up to %s: %v", at.Format(time.RFC3339Nano), err)
		}
		if from.Records() != 3 || upTo.Records() != 0 {
			t.Errorf("at %s: %d records from it, %d before it; want 3 and 0", at.Format(time.RFC3339Nano), from.Records(), upTo.Records())
		}
		if got := collect(t, TailConfig{Brokers: b.Addrs(), IntegrationID: id, From: at}); len(got) != 3 {
			t.Errorf("tail from %s: %d records, want 3", at.Format(time.RFC3339Nano), len(got))
		}
	}
}

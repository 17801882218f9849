package kafka

import (
	"slices"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// scanIDs runs Scan over req and returns the event ids it passed to fn,
// sorted, checking that each batch holds at most the batch size, from one
// partition, in offset order, within the bounds.
func scanIDs(t *testing.T, r *ReplayReader, req projections.ScanRequest) []string {
	t.Helper()
	var ids []string
	err := r.Scan(testContext(t), req, func(recs []projections.ScannedRecord) error {
		if len(recs) == 0 || len(recs) > max(req.BatchSize, 1) {
			t.Errorf("batch of %d records, want 1 to %d", len(recs), max(req.BatchSize, 1))
		}
		for i, s := range recs {
			if s.Partition != recs[0].Partition || i > 0 && s.Offset <= recs[i-1].Offset {
				t.Errorf("batch mixes partitions or offsets: %v@%d after %v", s.Partition, s.Offset, recs[0].Partition)
			}
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
	p := newProducer(t, b.Addrs(), 5*time.Second)

	alpha, beta := randomID("alpha"), randomID("beta")
	type appended struct {
		env   domain.Envelope
		early bool
	}
	var log []appended
	add := func(integration string, typ domain.EventType, early bool) {
		e := envelope(integration, typ, "")
		mustAppend(t, p, e)
		log = append(log, appended{env: e, early: early})
	}
	for range 3 {
		add(alpha, domain.TransactionCreated, true)
		add(beta, domain.TransactionCreated, true)
		add(alpha, domain.ContactCreated, true)
		add(beta, domain.TaskCompleted, true)
		add(alpha, domain.TaskCompleted, true)
	}
	// Record timestamps have millisecond precision: from is the first
	// millisecond after the early records, and the late ones are appended
	// once it has come.
	from := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(time.Until(from))
	for range 2 {
		add(alpha, domain.TransactionStatusChanged, false)
		add(beta, domain.ContactCreated, false)
		add(alpha, domain.DocumentUploaded, false)
		add(beta, domain.TransactionCreated, false)
	}

	ids := func(keep func(a appended) bool) []string {
		var out []string
		for _, a := range log {
			if keep(a) {
				out = append(out, a.env.EventID)
			}
		}
		slices.Sort(out)
		return out
	}
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

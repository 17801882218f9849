package projections

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Filling a log-behind gap replays its window up to and including the last
// record the gap names (the one appended at the gap's To), and stops
// before the records too recent to be a gap.
func TestFillLogBehindGapAppliesItsLastRecord(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	old := now.Add(-time.Hour)
	rec, m := behindRecovery(t, now, 0)
	topic := domain.TopicTransactions
	found, err := rec.Gaps(context.Background(), "int_a")
	gaps := found.Gaps
	if err != nil {
		t.Fatal(err)
	}
	var behind *Gap
	for i, g := range gaps {
		if g.Kind == GapLogBehind {
			if behind != nil {
				t.Fatalf("two log-behind gaps: %+v", gaps)
			}
			behind = &gaps[i]
		}
	}
	if behind == nil {
		t.Fatalf("no log-behind gap: %+v", gaps)
	}
	if behind.Topic != topic || behind.Fill != FillReplay || behind.Records != 2 ||
		!behind.From.Equal(old.Add(2*time.Minute)) || !behind.To.Equal(old.Add(3*time.Minute)) {
		t.Fatalf("log-behind gap %+v, want e3 and e4 of %s from %s to %s", *behind, topic, old.Add(2*time.Minute), old.Add(3*time.Minute))
	}

	rep, err := rec.Fill(context.Background(), "int_a", "corr")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 0 {
		t.Fatalf("fill errors: %+v", rep.Errors)
	}
	if len(rep.Replayed) == 0 {
		t.Fatalf("fill replayed nothing: %+v", rep)
	}
	// The log-behind gap is filled first, by a replay of its window alone:
	// e3 and e4, both applied and audited, and not e5.
	rr := rep.Replayed[0]
	if rr.From == nil || !rr.From.Equal(*behind.From) || rr.To == nil || rr.To.Before(*behind.To) || !rr.To.Before(now) {
		t.Fatalf("replayed window %v to %v, want from %s through %s", rr.From, rr.To, behind.From, behind.To)
	}
	if rr.Records != 2 || rr.Applied != 2 || rr.AuditRestored != 2 || rr.Unchanged != 0 {
		t.Fatalf("log-behind replay %+v, want e3 and e4 applied and audited", rr)
	}
	for _, id := range []string{"e3", "e4"} {
		if _, ok := m.audit[EventKey{"int_a", id}]; !ok {
			t.Errorf("%s has no audit row after the fill", id)
		}
	}
	if !m.changes["e4"] {
		t.Errorf("the status change of e4 was not recorded by the fill")
	}
}

// behindRecovery is a log of five records (e1 to e4 an hour before now,
// e5 at now) whose transactions projection applied e1 only (contacts is up
// to date), and a recovery over it reading scanLimit offsets per
// partition (0: the default).
func behindRecovery(t *testing.T, now time.Time, scanLimit int64, more ...func(log *fakeLog, old time.Time)) (*Recovery, *memStore) {
	t.Helper()
	old := now.Add(-time.Hour)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", old, `{"id":"txn_1","status":"open"}`)
	log.add(domain.ContactCreated, "e2", old.Add(time.Minute), `{"id":"con_1","transaction_id":"txn_1","first_name":"Ada"}`)
	log.add(domain.TransactionUpdated, "e3", old.Add(2*time.Minute), `{"id":"txn_1","status":"in_progress"}`)
	log.add(domain.TransactionStatusChanged, "e4", old.Add(3*time.Minute), `{"id":"txn_1","status":"closed"}`)
	log.add(domain.TransactionUpdated, "e5", now, `{"id":"txn_1","property_address":"1 Main St"}`)
	for _, m := range more {
		m(log, old)
	}
	topic := domain.TopicTransactions
	names := map[string]string{topic: "transactions", domain.TopicContacts: "contacts"}
	m := newMemStore()
	applied := &fakeLog{recs: []ScannedRecord{log.recs[0], log.recs[1]}}
	if _, err := NewReplayer(m, applied, nil).Replay(context.Background(), ReplayRequest{}); err != nil {
		t.Fatal(err)
	}
	cps := []CheckpointRow{
		{Projection: "transactions", Partition: Partition{Topic: topic}, Next: 1},
		{Projection: "contacts", Partition: Partition{Topic: domain.TopicContacts}, Next: 1},
	}
	fc := fakeConsistency{m}
	return NewRecovery(GapConfig{Topics: []string{topic, domain.TopicContacts}, Names: names, ScanLimit: scanLimit},
		RecoveryDeps{Log: log, Status: fakeStatus{cps}, Store: fc, Failed: fc, Retrier: fc, Settled: fc, Replayer: NewReplayer(m, log, nil)}), m
}

// When the scan for unapplied records stops short of a partition's
// checkpoint, the log-behind gap says its count is a floor and names no
// start, and the fill replays it from the log's start: e3, before the two
// offsets read, is applied too.
func TestTruncatedLogBehindGapIsFilledFromTheStart(t *testing.T) {
	t.Parallel()
	// A contacts record past its checkpoint too, within the offsets read:
	// its gap keeps its start.
	var e6 time.Time
	rec, m := behindRecovery(t, time.Now().UTC(), 2, func(log *fakeLog, old time.Time) {
		e6 = old.Add(4 * time.Minute)
		log.add(domain.ContactUpdated, "e6", e6, `{"id":"con_1","last_name":"Lovelace"}`)
	})
	found, err := rec.Gaps(context.Background(), "int_a")
	gaps := found.Gaps
	if err != nil {
		t.Fatal(err)
	}
	behind := map[string]Gap{}
	for _, g := range gaps {
		if g.Kind == GapLogBehind {
			behind[g.Topic] = g
		}
	}
	if g, ok := behind[domain.TopicTransactions]; !ok || g.Records != 1 || g.From != nil || !strings.Contains(g.Missing, "at least 1 record") {
		t.Fatalf("log-behind gaps %+v, want one of transactions of at least 1 record (e4) and no start", behind)
	}
	if g, ok := behind[domain.TopicContacts]; !ok || g.Records != 1 || g.From == nil || !g.From.Equal(e6) || strings.Contains(g.Missing, "at least") {
		t.Fatalf("log-behind gaps %+v, want one of contacts from e6, read in full", behind)
	}
	rep, err := rec.Fill(context.Background(), "int_a", "corr")
	if err != nil || len(rep.Errors) != 0 || len(rep.Replayed) == 0 {
		t.Fatalf("fill %+v (%v)", rep, err)
	}
	if !slices.ContainsFunc(rep.Replayed, func(rr ReplayReport) bool { return rr.From == nil && rr.Applied >= 2 }) {
		t.Fatalf("replays %+v, want one from the log's start applying e3 and e4", rep.Replayed)
	}
	for _, id := range []string{"e3", "e4"} {
		if _, ok := m.audit[EventKey{"int_a", id}]; !ok {
			t.Errorf("%s has no audit row after the fill", id)
		}
	}
}

// A record past its checkpoint whose event is settled already (a dead
// letter the poison queue marked FAILED, the last of its partition, so no
// later record moves the checkpoint past it) waits for nothing: it is
// neither pending nor a log-behind gap.
func TestSettledRecordsPastTheCheckpointAreNoGap(t *testing.T) {
	t.Parallel()
	old := time.Now().UTC().Add(-time.Hour)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", old, `{"id":"txn_1","status":"open"}`)
	log.add(domain.TransactionUpdated, "e_dead", old.Add(time.Minute), `{"status":"no id"}`)
	topic := domain.TopicTransactions
	m := newMemStore()
	if _, err := NewReplayer(m, &fakeLog{recs: log.recs[:1]}, nil).Replay(context.Background(), ReplayRequest{}); err != nil {
		t.Fatal(err)
	}
	m.audit[EventKey{"int_a", "e_dead"}] = AuditRow{IntegrationID: "int_a", EventID: "e_dead", Status: StatusFailed}
	cps := []CheckpointRow{{Projection: "transactions", Partition: Partition{Topic: topic}, Next: 1}}
	fc := fakeConsistency{m}
	rec := NewRecovery(GapConfig{Topics: []string{topic}, Names: map[string]string{topic: "transactions"}},
		RecoveryDeps{Log: log, Status: fakeStatus{cps}, Store: fc, Failed: fc, Retrier: fc, Settled: fc, Replayer: NewReplayer(m, log, nil)})
	pending, _, err := rec.Pending(context.Background(), "int_a", 0)
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending %+v (%v), want none", pending, err)
	}
	found, err := rec.Gaps(context.Background(), "int_a")
	gaps := found.Gaps
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gaps {
		if g.Kind == GapLogBehind {
			t.Fatalf("a dead letter is a log-behind gap: %+v", g)
		}
	}
	// Not settled, the same record is pending and a gap.
	delete(m.audit, EventKey{"int_a", "e_dead"})
	if pending, _, err := rec.Pending(context.Background(), "int_a", 0); err != nil || len(pending) != 1 || pending[0].EventID != "e_dead" {
		t.Fatalf("pending %+v (%v), want e_dead", pending, err)
	}
}

// Pending reads only the last limit offsets of each partition and says
// when that left records out.
func TestPendingReadsTheLastOffsetsOnly(t *testing.T) {
	t.Parallel()
	old := time.Now().UTC().Add(-time.Hour)
	log := &fakeLog{}
	for i := range 5 {
		log.add(domain.TransactionCreated, fmt.Sprintf("e%d", i), old.Add(time.Duration(i)*time.Minute), fmt.Sprintf(`{"id":"txn_%d","status":"open"}`, i))
	}
	topic := domain.TopicTransactions
	m := newMemStore()
	fc := fakeConsistency{m}
	cps := []CheckpointRow{{Projection: "transactions", Partition: Partition{Topic: topic}, Next: 1}}
	rec := NewRecovery(GapConfig{Topics: []string{topic}, Names: map[string]string{topic: "transactions"}},
		RecoveryDeps{Log: log, Status: fakeStatus{cps}, Store: fc, Failed: fc, Retrier: fc, Settled: fc, Replayer: NewReplayer(m, log, nil)})
	ids := func(recs []PendingRecord) (out []string) {
		for _, r := range recs {
			out = append(out, r.EventID)
		}
		return out
	}
	for _, tt := range []struct {
		limit     int64
		want      []string
		truncated bool
	}{
		{2, []string{"e3", "e4"}, true},
		{4, []string{"e1", "e2", "e3", "e4"}, false},
		{0, []string{"e1", "e2", "e3", "e4"}, false}, // ScanLimit
	} {
		recs, truncated, err := rec.Pending(context.Background(), "int_a", tt.limit)
		if err != nil || !slices.Equal(ids(recs), tt.want) || truncated != tt.truncated {
			t.Errorf("pending within %d offsets: %v, truncated %v (%v); want %v, %v", tt.limit, ids(recs), truncated, err, tt.want, tt.truncated)
		}
		if q := QueueOf(recs, truncated); q.Depth != int64(len(tt.want)) || q.Partial != tt.truncated {
			t.Errorf("queue within %d offsets: %+v", tt.limit, q)
		}
	}
}

package projections

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

type fakeStatus struct{ cps []CheckpointRow }

func (f fakeStatus) ProjectionCheckpoints(context.Context) ([]CheckpointRow, error) {
	return f.cps, nil
}
func (f fakeStatus) LastErrors(context.Context) (map[string]LastError, error)       { return nil, nil }
func (f fakeStatus) Latest(context.Context, RebuildKind, int) ([]RebuildRun, error) { return nil, nil }

type fakeConsistency struct{ m *memStore }

func (f fakeConsistency) EntityRows(_ context.Context, id string) ([]domain.Entity, error) {
	var out []domain.Entity
	for _, e := range f.m.entities {
		out = append(out, e)
	}
	return out, nil
}

func (f fakeConsistency) AuditCounts(context.Context, string) (map[AuditBucket]StatusCounts, error) {
	out := map[AuditBucket]StatusCounts{}
	for _, a := range f.m.audit {
		b := AuditBucket{a.EventType, a.ReceivedAt.UTC().Truncate(time.Hour)}
		c := out[b]
		c.Received++
		switch a.Status {
		case StatusCompleted:
			c.Completed++
			if a.ProcessingTimeMs != nil {
				c.ProcessingMs += *a.ProcessingTimeMs
				c.MaxProcessingMs = max(c.MaxProcessingMs, *a.ProcessingTimeMs)
			}
		case StatusFailed:
			c.Failed++
		case StatusSkipped:
			c.Skipped++
		}
		out[b] = c
	}
	return out, nil
}

// MetricsCounts counts as the metrics rows would: the memStore keeps none,
// so its audit stands for them.
func (f fakeConsistency) MetricsCounts(ctx context.Context, id string) (map[AuditBucket]StatusCounts, error) {
	return f.AuditCounts(ctx, id)
}

func (f fakeConsistency) Snapshot(_ context.Context, fn func(ConsistencyStore) error) error {
	return fn(f)
}

func (f fakeConsistency) AheadOf(context.Context, string, map[Partition]int64) (map[AuditBucket]int64, map[string]bool, error) {
	return nil, nil, nil
}

func (f fakeConsistency) StatusChanges(context.Context, string) ([]domain.StatusChange, error) {
	return f.m.history, nil
}

func (f fakeConsistency) AuditRows(context.Context, string, func(AuditRef) error) error {
	return nil
}

func (f fakeConsistency) RefileAudit(context.Context, string, []AuditRef) (int, error) {
	return 0, nil
}

func (f fakeConsistency) FailedEvents(context.Context, string) (int64, time.Time, time.Time, error) {
	return 0, time.Time{}, time.Time{}, nil
}

func (f fakeConsistency) RetryFailed(context.Context, string, []string, string) (int, error) {
	return 0, nil
}

func (f fakeConsistency) Settled(_ context.Context, id string, eventIDs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, e := range eventIDs {
		switch f.m.audit[EventKey{id, e}].Status {
		case StatusCompleted, StatusFailed, StatusSkipped:
			out[e] = true
		}
	}
	return out, nil
}

type fakeSyncs struct{ info SyncInfo }

func (f fakeSyncs) SyncInfo(context.Context, string) (SyncInfo, error) { return f.info, nil }

func TestGaps(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	old := now.Add(-time.Hour)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", old, `{"id":"txn_1","status":"open"}`)
	log.add(domain.TransactionUpdated, "e2", old.Add(time.Minute), `{"id":"txn_1","status":"closed"}`)
	log.add(domain.TransactionUpdated, "e3", now, `{"id":"txn_1","status":"closed"}`)
	names := map[string]string{domain.TopicTransactions: "transactions"}
	finished := now.Add(-10 * time.Minute)
	tests := []struct {
		name  string
		cps   []CheckpointRow
		syncs SyncInfo
		want  []string
	}{
		{name: "projected and synced: no gap",
			cps:   []CheckpointRow{{Projection: "transactions", Partition: Partition{Topic: domain.TopicTransactions}, Next: 3}},
			syncs: SyncInfo{Enabled: true, Connected: true, Frequency: 15 * time.Minute, Runs: []SyncRunInfo{{StartedAt: finished, FinishedAt: &finished}}}},
		{name: "records behind for longer than the threshold",
			cps:   []CheckpointRow{{Projection: "transactions", Partition: Partition{Topic: domain.TopicTransactions}, Next: 1}},
			syncs: SyncInfo{Connected: true},
			want:  []string{GapLogBehind, GapReadModel}},
		{name: "last sync failed and none for too long",
			cps: []CheckpointRow{{Projection: "transactions", Partition: Partition{Topic: domain.TopicTransactions}, Next: 3}},
			syncs: SyncInfo{Enabled: true, Connected: true, Frequency: time.Minute,
				Runs: []SyncRunInfo{{Failed: true, StartedAt: finished, FinishedAt: &finished, Error: "boom"}}},
			want: []string{GapSyncFailed, GapSyncMissed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMemStore()
			// The read models hold what the checkpoint says was applied.
			next := tt.cps[0].Next
			var applied []ScannedRecord
			for _, r := range log.recs {
				if r.Offset < next {
					applied = append(applied, r)
				}
			}
			if _, err := NewReplayer(m, &fakeLog{recs: applied}, nil).Replay(context.Background(), ReplayRequest{}); err != nil {
				t.Fatal(err)
			}
			fc := fakeConsistency{m}
			rec := NewRecovery(GapConfig{Topics: []string{domain.TopicTransactions}, Names: names},
				RecoveryDeps{Log: log, Status: fakeStatus{tt.cps}, Store: fc, Failed: fc, Retrier: fc, Settled: fc,
					Replayer: NewReplayer(m, log, nil), Syncs: fakeSyncs{tt.syncs}})
			found, err := rec.Gaps(context.Background(), "int_a")
			gaps := found.Gaps
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, g := range gaps {
				kinds = append(kinds, g.Kind)
			}
			if len(kinds) != len(tt.want) {
				t.Fatalf("gaps %v, want %v: %+v", kinds, tt.want, gaps)
			}
			for i := range kinds {
				if kinds[i] != tt.want[i] {
					t.Fatalf("gaps %v, want %v", kinds, tt.want)
				}
			}
			for _, g := range gaps {
				if g.Kind == GapLogBehind && (g.Records != 1 || !g.From.Equal(old.Add(time.Minute))) {
					t.Fatalf("log gap %+v: want the one record older than the threshold", g)
				}
			}
		})
	}
}

type fakeSource struct{}

func (fakeSource) ChangedSince(context.Context, string, time.Time) ([]SourceRecord, error) {
	return nil, nil
}

// The sides left out for want of scheduled sync are named, by NotChecked
// and in the fill's report, rather than passed over in silence.
func TestRecoveryNamesTheSidesItDoesNotCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		syncs  SyncHistory
		source SourceLister
		want   []string
	}{
		{name: "no scheduled sync", want: []string{SideSync, SideData}},
		{name: "no SoftPro API", syncs: fakeSyncs{}, want: []string{SideData}},
		{name: "every side", syncs: fakeSyncs{}, source: fakeSource{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMemStore()
			log := &fakeLog{}
			fc := fakeConsistency{m}
			rec := NewRecovery(GapConfig{Topics: []string{domain.TopicTransactions}, Names: map[string]string{domain.TopicTransactions: "transactions"}},
				RecoveryDeps{Log: log, Status: fakeStatus{}, Store: fc, Failed: fc, Retrier: fc, Settled: fc,
					Replayer: NewReplayer(m, log, nil), Syncs: tt.syncs, Source: tt.source})
			if got := rec.NotChecked(); !slices.Equal(got, tt.want) {
				t.Errorf("NotChecked() = %v, want %v", got, tt.want)
			}
			rep, err := rec.Fill(context.Background(), "int_a", "test")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.NotChecked, tt.want) {
				t.Errorf("fill report: notChecked %v, want %v", rep.NotChecked, tt.want)
			}
			// Sides left out by configuration do not make a fill partial.
			if rep.Partial || len(rep.NotCheckedReasons) != len(tt.want) {
				t.Errorf("fill report: partial %v, reasons %v, want not partial and a reason per side", rep.Partial, rep.NotCheckedReasons)
			}
		})
	}
}

type failingSource struct{ err error }

func (f failingSource) ChangedSince(context.Context, string, time.Time) ([]SourceRecord, error) {
	return nil, f.err
}

// A SoftPro API that does not answer leaves the data side out, named with
// why, and every other side is still checked and filled: the failed sync
// and the row deleted behind the system's back are found, and the row is
// refolded. Any other failure of the data side still fails the whole.
func TestGapsWithoutTheSoftProAPICheckAndFillTheOtherSides(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	old := now.Add(-time.Hour)
	finished := now.Add(-10 * time.Minute)
	newRecovery := func(source SourceLister) (*Recovery, *memStore) {
		log := &fakeLog{}
		log.add(domain.TransactionCreated, "e1", old, `{"id":"txn_1","status":"open"}`)
		m := newMemStore()
		if _, err := NewReplayer(m, log, nil).Replay(context.Background(), ReplayRequest{}); err != nil {
			t.Fatal(err)
		}
		// Deleted behind the system's back.
		delete(m.entities, domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"})
		fc := fakeConsistency{m}
		cps := []CheckpointRow{{Projection: "transactions", Partition: Partition{Topic: domain.TopicTransactions}, Next: 1}}
		syncs := SyncInfo{Connected: true, Runs: []SyncRunInfo{{Failed: true, StartedAt: finished, FinishedAt: &finished, Error: "connection refused"}}}
		return NewRecovery(GapConfig{Topics: []string{domain.TopicTransactions}, Names: map[string]string{domain.TopicTransactions: "transactions"}},
			RecoveryDeps{Log: log, Status: fakeStatus{cps}, Store: fc, Failed: fc, Retrier: fc, Settled: fc,
				Replayer: NewReplayer(m, log, nil), Syncs: fakeSyncs{syncs}, Source: source}), m
	}
	down := &SourceError{Err: errors.New("list transactions: dial tcp 127.0.0.1:1: connection refused")}

	rec, m := newRecovery(failingSource{down})
	rep, err := rec.Gaps(context.Background(), "int_a")
	if err != nil {
		t.Fatalf("gaps with the SoftPro API down: %v", err)
	}
	var kinds []string
	for _, g := range rep.Gaps {
		kinds = append(kinds, g.Kind)
	}
	if !slices.Equal(kinds, []string{GapSyncFailed, GapReadModel}) {
		t.Errorf("gaps %v, want the failed sync and the deleted row", kinds)
	}
	if !slices.Equal(rep.NotChecked, []string{SideData}) || !strings.Contains(rep.NotCheckedReasons[SideData], "connection refused") {
		t.Errorf("notChecked %v reasons %v, want the data side with the API's failure", rep.NotChecked, rep.NotCheckedReasons)
	}

	fill, err := rec.Fill(context.Background(), "int_a", "test")
	if err != nil {
		t.Fatalf("fill with the SoftPro API down: %v", err)
	}
	if _, ok := m.entities[domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_1"}]; !ok {
		t.Errorf("fill did not refold the deleted row: %+v", fill)
	}
	// No syncer: the sync-failed gap is not filled.
	if !fill.Partial || len(fill.Errors) != 1 || !slices.Equal(fill.NotChecked, []string{SideData}) || fill.NotCheckedReasons[SideData] == "" {
		t.Errorf("fill report %+v, want it partial, the failed sync in errors and the data side not checked, with why", fill)
	}

	// The database behind the data side failing is no reason to report
	// the others alone.
	rec, _ = newRecovery(failingSource{errors.New("get integration: connection reset by peer")})
	if _, err := rec.Gaps(context.Background(), "int_a"); err == nil {
		t.Error("gaps whose data side fails for the database: no error")
	}
	if _, err := rec.Fill(context.Background(), "int_a", "test"); err == nil {
		t.Error("fill whose data side fails for the database: no error")
	}
}

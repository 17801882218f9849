package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// The overlap brings the records of the last minute again on every run;
// those already appended are passed over, so an integration where nothing
// changes appends nothing and counts nothing, while a record committed late
// inside the overlap, behind the watermark, is still appended.
func TestSyncOfAnIdleIntegrationAppendsNothingAgain(t *testing.T) {
	t.Parallel()
	first := time.Now().Add(-30 * time.Second)
	m := newMemSync(t, 1000, transactionsEvery(first, 5, 5*time.Second)) // all inside the overlap
	sync := func() int {
		t.Helper()
		run, err := m.syncer.Sync(context.Background(), SyncRequest{IntegrationID: "int_a", Trigger: TriggerManual})
		if err != nil {
			t.Fatal(err)
		}
		return run.Records[domain.SyncTransactions]
	}
	if n := sync(); n != 5 || m.log.count() != 5 {
		t.Fatalf("first run counted %d and appended %d records, want 5", n, m.log.count())
	}
	for i := range 3 {
		if n := sync(); n != 0 || m.log.count() != 5 {
			t.Fatalf("idle run %d counted %d, log holds %d records: want 0 appended again", i+2, n, m.log.count())
		}
	}

	// Committed late: stamped 20 s behind the watermark, inside the overlap.
	at := first.Add(5 * time.Second).UTC()
	raw, _ := json.Marshal(map[string]any{"id": "txn_late", "updated_at": at})
	m.api.mu.Lock()
	m.api.recs = append(m.api.recs, Record{ID: "txn_late", UpdatedAt: at, Raw: raw})
	m.api.mu.Unlock()
	if n := sync(); n != 1 || m.log.count() != 6 {
		t.Fatalf("run after a late commit counted %d, log holds %d records: want the late one appended", n, m.log.count())
	}
	if last := m.log.ids[len(m.log.ids)-1]; last != domain.SyncEventID(domain.TransactionSynced, "txn_late", at) {
		t.Fatalf("last appended %s, want the late record", last)
	}
	if n := sync(); n != 0 || m.log.count() != 6 {
		t.Fatalf("idle run after the late commit counted %d, log holds %d records", n, m.log.count())
	}
}

// A mark remembers the records the next run gets again (updated_at at or
// after the watermark less the overlap) and no more than maxRecent of them,
// the newest.
func TestSyncMarkRemembersOnlyTheOverlap(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	many := map[string]time.Time{}
	for i := range maxRecent + 10 {
		many[fmt.Sprint(i)] = at.Add(-time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		name      string
		prev      map[string]time.Time
		appended  map[string]time.Time
		want      int
		kept, not string
	}{
		{name: "prunes records before the overlap",
			prev:     map[string]time.Time{"old": at.Add(-2 * time.Minute), "edge": at.Add(-time.Minute)},
			appended: map[string]time.Time{"new": at, "ahead": at.Add(time.Hour)},
			want:     3, kept: "edge", not: "old"},
		{name: "keeps the newest maxRecent", appended: many, want: maxRecent, kept: "0", not: fmt.Sprint(maxRecent)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := SyncMark{Recent: tt.prev}.advance(at, tt.appended, time.Minute)
			if !got.At.Equal(at) || len(got.Recent) != tt.want {
				t.Fatalf("mark at %s with %d records, want %s with %d", got.At, len(got.Recent), at, tt.want)
			}
			if _, ok := got.Recent[tt.kept]; !ok {
				t.Errorf("%s forgotten", tt.kept)
			}
			if _, ok := got.Recent[tt.not]; ok {
				t.Errorf("%s remembered", tt.not)
			}
		})
	}
}

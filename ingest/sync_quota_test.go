package ingest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A rateLimit changed during a run applies from the run's next page: a
// long full sync does not go on at the old rate.
func TestSyncFollowsARateLimitChangedDuringTheRun(t *testing.T) {
	t.Parallel()
	m := newMemSync(t, 1000, transactionsEvery(time.Now().Add(-time.Hour), 10, time.Second))
	m.api.onPage = func(n int) {
		if n == 1 {
			m.in.set(func(in *domain.Integration) { in.RateLimit = 10 })
		}
	}
	run, err := m.syncer.Sync(context.Background(), SyncRequest{IntegrationID: "int_a", Trigger: TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if run.Records[domain.SyncTransactions] != 10 {
		t.Fatalf("synced %v, want 10 transactions", run.Records)
	}
	want := []int{1000, 10, 10, 10, 10}
	if !slices.Equal(m.limits.limits, want) {
		t.Fatalf("quota asked of the limiter per page %v, want %v", m.limits.limits, want)
	}
}

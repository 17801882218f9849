package projections

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// TestEntityFilterScope: every field that chooses a walk's rows or their
// order changes its scope; the page size and the position do not.
func TestEntityFilterScope(t *testing.T) {
	t.Parallel()
	day := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	base := EntityFilter{Kind: domain.KindTransaction, IntegrationID: "int_1", Limit: 50}
	tests := []struct {
		name   string
		change func(f *EntityFilter)
		same   bool
	}{
		{"limit", func(f *EntityFilter) { f.Limit = 1 }, true},
		{"after", func(f *EntityFilter) { f.After = &Cursor{Key: "k", ID: "i"} }, true},
		{"default sort", func(f *EntityFilter) { f.Sort = SortUpdatedAt }, true},
		{"sort", func(f *EntityFilter) { f.Sort = SortClosingDate }, false},
		{"order", func(f *EntityFilter) { f.Desc = true }, false},
		{"kind", func(f *EntityFilter) { f.Kind = domain.KindContact }, false},
		{"integration", func(f *EntityFilter) { f.IntegrationID = "int_2" }, false},
		{"transaction", func(f *EntityFilter) { f.TransactionID = "txn_1" }, false},
		{"deleted", func(f *EntityFilter) { f.IncludeDeleted = true }, false},
		{"status", func(f *EntityFilter) { f.Status = "open" }, false},
		{"file number", func(f *EntityFilter) { f.FileNumber = "F-1" }, false},
		{"closing from", func(f *EntityFilter) { f.ClosingFrom = &day }, false},
		{"closing to", func(f *EntityFilter) { f.ClosingTo = &day }, false},
		{"updated since", func(f *EntityFilter) { f.UpdatedSince = &day }, false},
		{"email", func(f *EntityFilter) { f.Email = "a@example.com" }, false},
		{"name", func(f *EntityFilter) { f.NamePrefix = "Ada" }, false},
		{"due before", func(f *EntityFilter) { f.DueBefore = &day }, false},
		// Fields are separated: moving text between them is another walk.
		{"shifted text", func(f *EntityFilter) { f.IntegrationID, f.TransactionID = "int_", "1" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := base
			tc.change(&f)
			if same := f.Scope() == base.Scope(); same != tc.same {
				t.Errorf("scope unchanged = %v, want %v", same, tc.same)
			}
		})
	}
	h := HistoryFilter{IntegrationID: "int_1", TransactionID: "txn_1", Limit: 50}
	if h.Scope() == (HistoryFilter{IntegrationID: "int_1", TransactionID: "txn_2"}).Scope() || h.Scope() == base.Scope() {
		t.Error("status history scopes do not tell transactions or lists apart")
	}
	if h.Scope() != (HistoryFilter{IntegrationID: "int_1", TransactionID: "txn_1", Limit: 1}).Scope() {
		t.Error("status history scope depends on the page size")
	}
}

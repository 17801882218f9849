package sim

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Changes stamped now after one stamped ahead (a SoftPro clock running
// fast) keep the records in (updated_at, id) order, so paging by cursor
// serves each record once.
func TestChangesAfterOneStampedAheadKeepThePagesWhole(t *testing.T) {
	t.Parallel()
	const typ = domain.SyncTransactions
	s := New(Config{Seed: 1, Tenants: []string{"a"}, Records: 20, Epoch: time.Now().Add(-time.Hour)})
	if _, ok := s.ChangeAt("a", typ, s.Snapshot("a", typ)[0].ID, time.Now().Add(time.Hour)); !ok {
		t.Fatal("no change stamped ahead")
	}
	for _, r := range s.Snapshot("a", typ)[:5] {
		if _, ok := s.Modify("a", typ, r.ID); !ok {
			t.Fatalf("modify %s", r.ID)
		}
	}
	snap := s.Snapshot("a", typ)
	for i := 1; i < len(snap); i++ {
		if !snap[i-1].less(&snap[i]) {
			t.Errorf("record %d (%s %s) not after record %d (%s %s)", i, snap[i].ID, snap[i].UpdatedAt, i-1, snap[i-1].ID, snap[i-1].UpdatedAt)
		}
	}
	ten, _ := s.Tenant("a")
	served := map[string]int{}
	for cursor, pages := "", 0; pages < 100; pages++ {
		req := httptest.NewRequest("GET", "/t/a/v1/"+typ+"?limit=3&cursor="+cursor, nil)
		req.Header.Set("X-API-Key", ten.APIKey)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatalf("page %d: %v: %s", pages, err, w.Body)
		}
		for _, d := range page.Data {
			served[d.ID]++
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for _, r := range snap {
		if served[r.ID] != 1 {
			t.Errorf("%s served %d times, want once", r.ID, served[r.ID])
		}
	}
}

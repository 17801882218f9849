package tests

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A row that changes during a keyset walk moves: in ascending order it
// shows again, in its new state, at the end; in descending order it moves
// before the cursor and does not show again.
func TestKeysetWalkRowChangedDuringWalk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	for _, tc := range []struct {
		order   string
		changed string // the row updated after the first two pages
		want    string // the ids of the whole walk, in order
	}{
		{"asc", "txn_0", "txn_0,txn_1,txn_2,txn_3,txn_4,txn_0"},
		{"desc", "txn_4", "txn_4,txn_3,txn_2,txn_1,txn_0"},
	} {
		a, sa := e.integration(tc.order, map[string]any{"ingestRateLimit": 100000})
		want := map[string]string{}
		for i := range 5 {
			id := fmt.Sprintf("c%d", i)
			if r := e.send(signedWebhook(a, sa, event(id, domain.TransactionCreated, t0.Add(time.Duration(i)*time.Second),
				fmt.Sprintf(`{"id":"txn_%d","status":"open"}`, i)))); r.Status != 200 {
				t.Fatalf("%s: %d %s", id, r.Status, r.Raw)
			}
			want[id] = "COMPLETED"
		}
		e.waitStatuses(a, want)

		path := "/api/v1/integrations/softpro/" + a + "/transactions?limit=1&order=" + tc.order
		var ids []string
		var last map[string]any
		next := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("%s: walk does not end: %v", tc.order, ids)
			}
			if pages == 2 {
				// The row changes mid-walk: a later updatedAt and a new status.
				if r := e.send(signedWebhook(a, sa, event("upd", domain.TransactionUpdated, time.Now(),
					fmt.Sprintf(`{"id":%q,"status":"closed"}`, tc.changed)))); r.Status != 200 {
					t.Fatalf("update: %d %s", r.Status, r.Raw)
				}
				want["upd"] = "COMPLETED"
				e.waitStatuses(a, want)
			}
			l := e.list(path + next)
			for _, r := range l.Transactions {
				ids = append(ids, r["id"].(string))
				last = r
			}
			if !l.Pagination.HasMore {
				break
			}
			next = "&cursor=" + url.QueryEscape(*l.Pagination.NextCursor)
		}
		if got := strings.Join(ids, ","); got != tc.want {
			t.Errorf("%s walk: %s, want %s", tc.order, got, tc.want)
		}
		if tc.order == "asc" && (last["id"] != tc.changed || last["status"] != "closed") {
			t.Errorf("asc walk: last row %v, want %s in its new state (closed)", last, tc.changed)
		}
	}
}

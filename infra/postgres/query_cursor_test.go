package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// TestEntityCursorIgnoresSessionDateStyle: a walk's cursors hold keys
// formatted in Go, so a session whose DateStyle prints zone abbreviations
// (and whose TimeZone's abbreviation, IST, reads back as Israel time)
// walks every row once, in order, in each sort.
func TestEntityCursorIgnoresSessionDateStyle(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, map[string]string{"DateStyle": "SQL", "TimeZone": "Asia/Kolkata"})
	ctx := testContext(t)
	t0 := time.Date(2024, 1, 15, 10, 30, 0, 123456000, time.UTC)
	for i, closing := range []any{"2024-03-01", nil, "2024-02-01", "2024-02-01"} {
		_, err := pool.Exec(ctx, `INSERT INTO transactions (integration_id, id, closing_date, softpro_created_at, softpro_updated_at, last_event_id, payload)
 VALUES ('int_1', $1, $2::date, $3, $3, 'e', '{}')`, "txn_"+string(rune('a'+i)), closing, t0.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
	}
	s := NewQueryStore(pool)
	for _, tc := range []struct {
		name string
		sort projections.Sort
		desc bool
		want string
	}{
		{"updatedAt", projections.SortUpdatedAt, false, "txn_a,txn_b,txn_c,txn_d"},
		{"updatedAt desc", projections.SortUpdatedAt, true, "txn_d,txn_c,txn_b,txn_a"},
		{"closingDate", projections.SortClosingDate, false, "txn_c,txn_d,txn_a,txn_b"},
		{"closingDate desc", projections.SortClosingDate, true, "txn_b,txn_a,txn_d,txn_c"},
	} {
		f := projections.EntityFilter{Kind: domain.KindTransaction, IntegrationID: "int_1", Sort: tc.sort, Desc: tc.desc, Limit: 1}
		var ids []string
		for range 6 {
			page, err := s.Entities(ctx, f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			for _, e := range page.Entities {
				ids = append(ids, e.Key.ID)
			}
			if page.Next == nil {
				break
			}
			f.After = page.Next
		}
		if got := strings.Join(ids, ","); got != tc.want {
			t.Errorf("%s: walked %s, want %s", tc.name, got, tc.want)
		}
	}
}

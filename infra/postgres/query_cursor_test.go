package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// TestEntityCursorIgnoresSessionDateStyle: a walk's cursors hold keys
// formatted in Go, so a session whose DateStyle prints zone abbreviations
// (and whose TimeZone's abbreviation, IST, reads back as Israel time)
// walks every row once, in order, in each sort.
func TestEntityCursorIgnoresSessionDateStyle(t *testing.T) {
	t.Parallel()
	for name, params := range map[string]map[string]string{
		"SQL DateStyle, IST": {"DateStyle": "SQL", "TimeZone": "Asia/Kolkata"},
		// Parameters sent as text, in a zone west of UTC.
		"exec mode, Los Angeles": {"default_query_exec_mode": "exec", "TimeZone": "America/Los_Angeles"},
	} {
		t.Run(name, func(t *testing.T) { walkEveryOrder(t, migratedTestSchema(t, params)) })
	}
}

// TestEntityCursorOfDatesOutsideYears1To9999: a transaction may close on
// any date Postgres holds; a walk by closing date passes each such row once
// (the cursors it issues for them read back).
func TestEntityCursorOfDatesOutsideYears1To9999(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, nil)
	ctx := testContext(t)
	t0 := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	for i, closing := range []string{"10000-01-01", "0001-01-01 BC", "1969-12-31", "4713-11-24 BC", "5874897-12-31"} {
		_, err := pool.Exec(ctx, `INSERT INTO transactions (integration_id, id, closing_date, softpro_created_at, softpro_updated_at, last_event_id, payload)
 VALUES ('int_1', $1, $2::date, $3, $3, 'e', '{}')`, "txn_"+string(rune('a'+i)), closing, t0)
		if err != nil {
			t.Fatal(err)
		}
	}
	s := NewQueryStore(pool)
	for _, desc := range []bool{false, true} {
		f := projections.EntityFilter{Kind: domain.KindTransaction, IntegrationID: "int_1", Sort: projections.SortClosingDate, Desc: desc, Limit: 1}
		var ids []string
		for range 8 {
			page, err := s.Entities(ctx, f)
			if err != nil {
				t.Fatalf("desc %v: %v", desc, err)
			}
			for _, e := range page.Entities {
				ids = append(ids, e.Key.ID)
			}
			if page.Next == nil {
				break
			}
			f.After = page.Next
		}
		want := "txn_d,txn_b,txn_c,txn_a,txn_e"
		if desc {
			want = "txn_e,txn_a,txn_c,txn_b,txn_d"
		}
		if got := strings.Join(ids, ","); got != want {
			t.Errorf("desc %v: walked %s, want %s", desc, got, want)
		}
	}
}

func walkEveryOrder(t *testing.T, pool *pgxpool.Pool) {
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

// TestQueryRowItCannotDecodeIsNotAnOutage: a row whose value no Go type of
// the store holds (an infinite closing date, set behind the system's back)
// fails the read as such, not as the database being unavailable, which
// would have clients try again for ever.
func TestQueryRowItCannotDecodeIsNotAnOutage(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, nil)
	ctx := testContext(t)
	if _, err := pool.Exec(ctx, `INSERT INTO transactions (integration_id, id, closing_date, softpro_created_at, softpro_updated_at, last_event_id, payload)
 VALUES ('int_1', 'txn_a', 'infinity', now(), now(), 'e', '{}')`); err != nil {
		t.Fatal(err)
	}
	_, err := NewQueryStore(pool).Entities(ctx, projections.EntityFilter{Kind: domain.KindTransaction, IntegrationID: "int_1", Limit: 10})
	if err == nil || errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("listing a row it cannot decode: %v, want an error that is not ErrUnavailable", err)
	}
}

// TestStatusHistoryWalkOrdersIdsAsNumbers: changes of one second are
// ordered by id, a number, as the cursor compares them: a walk one change
// at a time across ids 9 and 10 returns each once, in order.
func TestStatusHistoryWalkOrdersIdsAsNumbers(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, nil)
	ctx := testContext(t)
	t0 := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `ALTER TABLE transaction_status_changes ALTER COLUMN id RESTART WITH 8`); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, to := range []string{"open", "pending", "closing", "closed"} {
		from := ""
		if i > 0 {
			from = want[i-1]
		}
		if _, err := pool.Exec(ctx, `INSERT INTO transaction_status_changes (integration_id, transaction_id, from_status, to_status, changed_at, event_id)
 VALUES ('int_1', 'txn_1', $1, $2, $3, $4)`, from, to, t0, "e_"+to); err != nil {
			t.Fatal(err)
		}
		want = append(want, to)
	}
	s := NewQueryStore(pool)
	f := projections.HistoryFilter{IntegrationID: "int_1", TransactionID: "txn_1", Limit: 1}
	var got []string
	for range 6 {
		page, err := s.StatusHistory(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Changes {
			got = append(got, c.To)
		}
		if page.Next == nil {
			break
		}
		f.After = page.Next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("walk returned %v, want %v (ids 8 to 11)", got, want)
	}
}

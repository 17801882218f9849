package postgres

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// A contact's name search folds the case of the search text and of the
// names with the same function, the database's lower(): in a database
// whose character type is "C" (which folds ASCII letters only) a name
// with letters outside ASCII is found by its own spelling, and by any case
// of its ASCII letters.
func TestContactNameSearchFoldsCaseAsTheDatabaseDoes(t *testing.T) {
	ctx := testContext(t)
	admin, err := pgx.Connect(ctx, testDatabaseURL())
	if err != nil {
		t.Fatalf("Postgres is needed: set TEST_DATABASE_URL (now %q): %v", redacted(testDatabaseURL()), err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) }) // after the drop below
	name := randomName(t, "test_ctype_c_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(testDatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	pool, err := Open(ctx, u.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := pool.Exec(ctx, `INSERT INTO contacts (integration_id, id, first_name, last_name, softpro_created_at,
 softpro_updated_at, last_event_id, payload) VALUES ('int_a', 'con_1', 'Ölaf', 'Ärger', $1, $1, 'evt_1', '{}')`, now); err != nil {
		t.Fatal(err)
	}
	q := NewQueryStore(pool)
	for search, want := range map[string]bool{
		"Öl": true, "ÖL": true, "Ölaf Är": true, "ÖLAF ÄR": true, "Är": true, "ÄRGER": true,
		"ölaf": false, // "C" leaves Ö as it is
		"Bob":  false,
	} {
		page, err := q.Entities(ctx, projections.EntityFilter{Kind: domain.KindContact, IntegrationID: "int_a", NamePrefix: search, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, 0, len(page.Entities))
		for _, e := range page.Entities {
			ids = append(ids, e.Key.ID)
		}
		if got := slices.Equal(ids, []string{"con_1"}); got != want {
			t.Errorf("name %q found %v, want found %v", search, ids, want)
		}
	}
}

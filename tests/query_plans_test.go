package tests

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// capture records every statement the store sends, with its arguments.
type capture struct {
	mu    sync.Mutex
	stmts []capturedStmt
}

type capturedStmt struct {
	sql  string
	args []any
}

func (c *capture) add(sql string, args []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stmts = append(c.stmts, capturedStmt{sql, args})
}

func (c *capture) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.add(d.SQL, d.Args)
	return ctx
}
func (c *capture) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *capture) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *capture) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.add(d.SQL, d.Args)
}
func (c *capture) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

var seqScan = regexp.MustCompile(`Seq Scan on (webhook_events|transactions|contacts|documents|tasks|transaction_status_changes)\b`)

// TestQueryPlansUseIndexes fills the read models with 100,000 rows each and
// checks that the statements the API sends for its main filters are planned
// without a sequential scan of a read model.
func TestQueryPlansUseIndexes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	ctx := context.Background()
	seed := []string{
		`INSERT INTO webhook_events (integration_id, event_id, event_type, payload, status, received_at, processing_time_ms, source, topic, "partition", "offset")
 SELECT 'int_' || (g % 100), 'evt_' || g, (ARRAY['transaction.updated','document.uploaded','task.created','contact.created'])[1 + g % 4], '{}',
 CASE WHEN g % 50 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, now() - (g || ' seconds')::interval * 25, 100, 'webhook', 'softpro.transactions.v1', g % 12, g
 FROM generate_series(1, 100000) g`,
		`INSERT INTO transactions (integration_id, id, file_number, status, closing_date, softpro_created_at, softpro_updated_at, last_event_id, payload, deleted)
 SELECT 'int_' || (g % 100), 'txn_' || g, 'F-' || g, (ARRAY['open','in_progress','closed'])[1 + g % 3], date '2024-01-01' + (g % 400),
 now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval, 'e', '{}', g % 20 = 0 FROM generate_series(1, 100000) g`,
		`INSERT INTO transaction_status_changes (integration_id, transaction_id, from_status, to_status, changed_at, event_id)
 SELECT 'int_' || (g % 100), 'txn_' || (g % 1000), 'open', 'closed', now() - (g || ' seconds')::interval, 'sc_' || g FROM generate_series(1, 100000) g`,
		`INSERT INTO contacts (integration_id, id, first_name, last_name, email, softpro_created_at, softpro_updated_at, last_event_id, payload)
 SELECT 'int_' || (g % 100), 'c_' || g, 'First' || g, 'Last' || g, 'user' || g || '@example.com', now(), now() - (g || ' seconds')::interval, 'e', '{}'
 FROM generate_series(1, 100000) g`,
		`INSERT INTO documents (integration_id, id, transaction_id, name, softpro_created_at, softpro_updated_at, last_event_id, payload)
 SELECT 'int_' || (g % 100), 'd_' || g, 'txn_' || (g % 5000), 'doc', now(), now() - (g || ' seconds')::interval, 'e', '{}' FROM generate_series(1, 100000) g`,
		`INSERT INTO tasks (integration_id, id, transaction_id, status, due_date, softpro_created_at, softpro_updated_at, last_event_id, payload)
 SELECT 'int_' || (g % 100), 'k_' || g, 'txn_' || (g % 5000), (ARRAY['open','done'])[1 + g % 2], now() + (g || ' minutes')::interval,
 now(), now() - (g || ' seconds')::interval, 'e', '{}' FROM generate_series(1, 100000) g`,
		`ANALYZE`,
	}
	for _, s := range seed {
		if _, err := db.Exec(ctx, s); err != nil {
			t.Fatalf("seed: %v\n%s", err, s)
		}
	}

	cfg, err := pgxpool.ParseConfig(e.Cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &capture{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := postgres.NewQueryStore(pool)
	now := time.Now().UTC()
	day := now.Add(-24 * time.Hour)
	mid := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ef := func(f projections.EventFilter) projections.EventFilter { f.Page, f.Limit = 3, 50; return f }
	for _, f := range []projections.EventFilter{
		ef(projections.EventFilter{}),
		ef(projections.EventFilter{IntegrationID: "int_7"}),
		ef(projections.EventFilter{EventType: domain.TaskCreated}),
		ef(projections.EventFilter{Status: projections.StatusFailed}),
		ef(projections.EventFilter{Status: projections.StatusReceived}),
		ef(projections.EventFilter{IntegrationID: "int_7", Start: day, End: now}),
	} {
		_, err := s.Events(ctx, f)
		must(err)
	}
	_, err = s.Event(ctx, projections.EventRef{ID: "evt_77"})
	must(err)
	_, err = s.ClaimFailed(ctx, "int_none", nil, now)
	must(err)
	after := &projections.Cursor{Key: now.Add(-time.Hour).Truncate(time.Microsecond).Format(time.RFC3339Nano), ID: "txn_5"}
	for _, f := range []projections.EntityFilter{
		{Kind: domain.KindTransaction, IntegrationID: "int_7"},
		{Kind: domain.KindTransaction, IntegrationID: "int_7", After: after, Desc: true},
		{Kind: domain.KindTransaction, IntegrationID: "int_7", Status: "open"},
		{Kind: domain.KindTransaction, IntegrationID: "int_7", FileNumber: "F-707"},
		{Kind: domain.KindTransaction, IntegrationID: "int_7", Sort: projections.SortClosingDate, ClosingFrom: &mid},
		{Kind: domain.KindTransaction, IntegrationID: "int_7", UpdatedSince: &day},
		{Kind: domain.KindContact, IntegrationID: "int_7", Email: "USER707@example.com"},
		{Kind: domain.KindContact, IntegrationID: "int_7", NamePrefix: "first70"},
		{Kind: domain.KindDocument, IntegrationID: "int_7", TransactionID: "txn_7"},
		{Kind: domain.KindTask, IntegrationID: "int_7", Status: "open"},
		{Kind: domain.KindTask, IntegrationID: "int_7", DueBefore: &now},
	} {
		f.Limit = 50
		if f.After != nil {
			c := *f.After
			c.Scope = f.Scope()
			f.After = &c
		}
		_, err := s.Entities(ctx, f)
		must(err)
	}
	_, err = s.Entity(ctx, domain.KindTransaction, "int_7", "txn_707", false)
	must(err)
	_, err = s.StatusHistory(ctx, projections.HistoryFilter{IntegrationID: "int_7", TransactionID: "txn_7", Limit: 50})
	must(err)
	_, err = s.Stats(ctx, projections.StatsFilter{Start: now.Add(-90 * time.Minute), End: now})
	must(err)

	if len(tr.stmts) < 30 {
		t.Fatalf("captured %d statements", len(tr.stmts))
	}
	for _, st := range tr.stmts {
		rows, err := db.Query(ctx, "EXPLAIN "+st.sql, st.args...)
		if err != nil {
			t.Fatalf("explain: %v\n%s", err, st.sql)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if m := seqScan.FindString(plan); m != "" {
			t.Errorf("%s\nargs %v\n%s", st.sql, st.args, plan)
		}
	}
	fmt.Fprintf(testWriter{t}, "checked %d plans\n", len(tr.stmts))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

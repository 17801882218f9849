package tests

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
)

// integrationsOnPartitions creates n integrations whose records land on n
// different partitions of topic.
func (e *Env) integrationsOnPartitions(t *testing.T, topic string, n int) (ids, secrets []string) {
	t.Helper()
	seen := map[int32]bool{}
	for i := 0; len(ids) < n && i < 1000; i++ {
		name := fmt.Sprintf("p%d", i)
		p := partitionFor(topic, e.id(name), e.Cfg.KafkaPartitions)
		if seen[p] {
			continue
		}
		seen[p] = true
		id, secret := e.integration(name, nil)
		ids, secrets = append(ids, id), append(secrets, secret)
	}
	if len(ids) < n {
		t.Fatalf("found %d integrations on distinct partitions, want %d", len(ids), n)
	}
	return ids, secrets
}

// activeOn is the live projection's active messages on topic, as the stats
// report them.
func (e *Env) activeOn(topic string) int64 {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats?period=1h", e.analystToken(), nil)
	if status != http.StatusOK {
		e.t.Fatalf("stats: %d %s", status, raw)
	}
	var stats struct{ QueueStats []httpapi.QueueStat }
	apiData(e.t, raw, &stats)
	for _, q := range stats.QueueStats {
		if q.QueueName == topic {
			return q.Active
		}
	}
	return 0
}

// holdProjections locks the checkpoints table as a rebuild's pause does:
// every live projection transaction waits at its first read until release.
func holdProjections(t *testing.T, db *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE`); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// An event the database refuses (here: a check constraint, as a bug in a
// projection would) fails only itself: good events of other partitions
// that share its projection transaction are applied, not sent to the
// poison queue with it.
func TestEventRefusedByTheDatabaseDoesNotPoisonItsBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.QueueRetryDelayMs, c.QueueMaxRetries = 10, 1 })
	db := e.db()
	heal := poisonTransactions(t, e)
	defer heal()
	ids, secrets := e.integrationsOnPartitions(t, domain.TopicTransactions, 3)
	now := time.Now()

	release := holdProjections(t, db)
	// The first message's transaction waits on the lock; the next two
	// queue behind it and are applied together once it is released.
	e.send(signedWebhook(ids[0], secrets[0], event("evt_first", domain.TransactionCreated, now, `{"id":"txn_a","file_number":"A-1"}`)))
	eventually(t, 30*time.Second, func() string {
		n := queryString(t, db, `SELECT count(*) FROM pg_locks
			WHERE relation = to_regclass('projection_checkpoints') AND NOT granted`)
		if n == "0" {
			return "no projection transaction waits on the checkpoints yet"
		}
		return ""
	})
	e.send(signedWebhook(ids[1], secrets[1], event("evt_bad", domain.TransactionCreated, now, `{"id":"txn_b","file_number":"POISON"}`)))
	e.send(signedWebhook(ids[2], secrets[2], event("evt_good", domain.TransactionCreated, now, `{"id":"txn_c","file_number":"C-1"}`)))
	eventually(t, 30*time.Second, func() string {
		if n := e.activeOn(domain.TopicTransactions); n != 3 {
			return fmt.Sprintf("%d messages active, want 3", n)
		}
		return ""
	})
	release()

	e.waitStatuses(ids[0], map[string]string{"evt_first": "COMPLETED"})
	e.waitStatuses(ids[1], map[string]string{"evt_bad": "FAILED"})
	e.waitStatuses(ids[2], map[string]string{"evt_good": "COMPLETED"})
	if got := queryString(t, db, `SELECT file_number FROM transactions WHERE integration_id = $1 AND id = 'txn_c'`, ids[2]); got != "C-1" {
		t.Fatalf("txn_c file number %q, want C-1", got)
	}
	if n := len(e.records(domain.TopicPoison)); n != 1 {
		t.Fatalf("poison topic holds %d records, want 1 (evt_bad)", n)
	}
}

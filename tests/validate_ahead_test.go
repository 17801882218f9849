package tests

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// lateStore runs before once, as validate reads the read models: what it
// does happens after validate's log read and before its database read.
type lateStore struct {
	projections.ConsistencyStore
	once   sync.Once
	before func()
}

func (s *lateStore) Snapshot(ctx context.Context, fn func(projections.ConsistencyStore) error) error {
	s.once.Do(s.before)
	return s.ConsistencyStore.Snapshot(ctx, fn)
}

// Events appended and projected after validate read the log, as under
// steady traffic, are neither missing from the log nor differences: the
// read models are compared as of the log read, and the next validation
// sees them.
func TestValidateComparesAsOfItsLogRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, secret, n := fixtureIntegration(t, e, db, "evt")
	log := kafka.NewReplayReader(e.Brokers)
	at := time.Now().Truncate(time.Second)
	store := &lateStore{ConsistencyStore: postgres.NewConsistencyStore(db), before: func() {
		for i, data := range []string{`{"id":"txn_1","status":"closing"}`, `{"id":"txn_9","file_number":"F-9","status":"open"}`} {
			w := signedWebhook(id, secret, event("late_"+string(rune('a'+i)), domain.TransactionUpdated, at, data))
			if r := e.send(w); r.Status != 200 {
				t.Errorf("late webhook: %d %s", r.Status, r.Raw)
			}
		}
		waitAudit(t, db, id, n+2)
	}}
	rep, err := projections.Validate(t.Context(), store, log, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Score != 100 || len(rep.Issues) != 0 || rep.Events != int64(n) {
		t.Fatalf("validate while two events came after its log read: score %d, %d events, issues %+v", rep.Score, rep.Events, rep.Issues)
	}
	if rep = e.consistency(id); rep.Score != 100 || rep.Events != int64(n+2) {
		t.Fatalf("the next validation: score %d, %d events, issues %+v", rep.Score, rep.Events, rep.Issues)
	}
	// Rows changed behind the system's back are still found.
	tamper(t, db, id, `DELETE FROM transactions WHERE integration_id=$1 AND id='txn_2'`)
	if rep = e.consistency(id); rep.Score == 100 || len(rep.Issues) != 1 || rep.Issues[0].Kind != projections.IssueMissing {
		t.Fatalf("after a row was deleted: score %d, issues %+v", rep.Score, rep.Issues)
	}
}

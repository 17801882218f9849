package projections

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A rebuild folds an entity whose events are on two topics (its family's
// webhooks and the sync topic's snapshots) in append order, as validate
// and the live projectors do: txn_a's snapshot comes before its update and
// adds a closing date; txn_b's comes after its update and is older, so it
// changes nothing. Applied topic by topic, in either order, one of the two
// would come out otherwise.
func TestRebuildFoldsAnEntitysTopicsInAppendOrder(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "a_created", t0, `{"id":"txn_a","status":"open"}`)
	log.add(domain.TransactionSynced, "a_sync", t0, `{"id":"txn_a","status":"open","closing_date":"2024-02-01"}`)
	log.add(domain.TransactionUpdated, "a_updated", t0.Add(time.Minute), `{"id":"txn_a","status":"closing"}`)
	log.add(domain.TransactionCreated, "b_created", t0, `{"id":"txn_b","status":"open"}`)
	log.add(domain.TransactionUpdated, "b_updated", t0.Add(time.Minute), `{"id":"txn_b","status":"closing"}`)
	log.add(domain.TransactionSynced, "b_sync", t0, `{"id":"txn_b","status":"open","closing_date":"2024-02-01"}`)

	want := map[domain.EntityKey]domain.Entity{}
	for _, r := range log.recs {
		c, _, err := domain.ChangeOf(r.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		if next, eff := domain.Apply(want[c.Key], c); eff.Applied {
			want[c.Key] = next
		}
	}
	a := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_a"}
	b := domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindTransaction, ID: "txn_b"}
	if want[a].Transaction.ClosingDate == nil || want[b].Transaction.ClosingDate != nil {
		t.Fatalf("fixture: closing dates %v and %v, want txn_a's only", want[a].Transaction.ClosingDate, want[b].Transaction.ClosingDate)
	}

	target := newMemTarget()
	rb, err := NewRebuilder(RebuildConfig{
		LiveSchema: "live",
		Topics:     []string{domain.TopicTransactions, domain.TopicSync},
		Names:      map[string]string{domain.TopicTransactions: "transactions", domain.TopicSync: "sync"},
	}, target, memRuns{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Rebuild(context.Background()); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	for _, k := range []domain.EntityKey{a, b} {
		got, w := target.store.entities[k], want[k]
		if got.Transaction.Status != w.Transaction.Status || (got.Transaction.ClosingDate == nil) != (w.Transaction.ClosingDate == nil) ||
			got.LastEventID != w.LastEventID || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("%s: rebuilt %+v, last event %s, data %s; want %+v, %s, %s", k.ID, got.Transaction, got.LastEventID, got.Data, w.Transaction, w.LastEventID, w.Data)
		}
	}
	// Every record is applied once, and the checkpoints say so.
	for topic, name := range map[string]string{domain.TopicTransactions: "transactions", domain.TopicSync: "sync"} {
		wantNext := int64(0)
		for _, r := range log.recs {
			if r.Topic == topic {
				wantNext++
			}
		}
		if got := target.store.checkpoints[name][Partition{Topic: topic}]; got != wantNext {
			t.Errorf("%s checkpoint %d, want %d", name, got, wantNext)
		}
	}
}

// A panic while a rebuild applies records fails the rebuild, as any error
// of its workers does: nothing is swapped in, and the process goes on.
func TestRebuildThatPanicsFailsWithoutSwapping(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	log.add(domain.TransactionCreated, "e1", time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC), `{"id":"txn_a","status":"open"}`)
	target := newMemTarget()
	target.store.panicSave = true
	rb, err := NewRebuilder(RebuildConfig{
		LiveSchema: "live", Topics: []string{domain.TopicTransactions},
		Names: map[string]string{domain.TopicTransactions: "transactions"},
	}, target, memRuns{}, log)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rb.Rebuild(context.Background())
	var perr *PanicError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "projection bug") {
		t.Fatalf("rebuild: %v, want the panic as its error", err)
	}
	if len(target.committed) != 0 {
		t.Fatalf("a failed rebuild swapped in %v", target.committed)
	}
}

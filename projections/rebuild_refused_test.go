package projections

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// refusingStore is a memStore whose Save fails, as a database refusing a
// value would, whenever the writes hold one of the refused entities.
type refusingStore struct {
	*memStore
	refused map[string]bool
	saves   int
}

func (s *refusingStore) InTx(ctx context.Context, fn func(context.Context, Tx) error) error {
	return fn(ctx, s)
}

func (s *refusingStore) Save(ctx context.Context, w Writes) error {
	s.saves++
	for _, e := range w.Entities {
		if s.refused[e.Key.ID] {
			return fmt.Errorf("save: ERROR: value refused for %s (SQLSTATE 23514)", e.Key.ID)
		}
	}
	return s.memStore.Save(ctx, w)
}

// A record the database refuses fails alone in a rebuild, marked FAILED
// with the database's error as the poison queue would mark it, while the
// records around it (an unprojectable payload among them) are applied in
// order; too many refusals fail the build instead.
func TestRebuildBatchesSplitAroundRecordsTheDatabaseRefuses(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	log := &fakeLog{}
	for i := range 40 {
		log.add(domain.ContactCreated, fmt.Sprintf("e%02d", i), t0.Add(time.Duration(i)*time.Second), fmt.Sprintf(`{"id":"con_%02d","email":"c%02d@example.com"}`, i, i))
	}
	log.add(domain.ContactUpdated, "e40", t0.Add(time.Minute), `{"email":"no id"}`) // unprojectable payload
	log.add(domain.ContactUpdated, "e41", t0.Add(time.Minute), `{"id":"con_05","email":"later@example.com"}`)
	recs := make([]Record, len(log.recs))
	for i, r := range log.recs {
		recs[i] = r.Record
	}
	refused := map[string]bool{"con_07": true, "con_31": true}

	s := &refusingStore{memStore: newMemStore(), refused: refused}
	p := NewProjector("contacts", s, nil)
	if err := applyAll(context.Background(), p, recs, newRefusalBudget(maxRefused)); err != nil {
		t.Fatalf("applyAll: %v", err)
	}
	for i := range 40 {
		id := fmt.Sprintf("con_%02d", i)
		_, has := s.entities[domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindContact, ID: id}]
		if has == refused[id] {
			t.Errorf("%s stored %v, refused %v", id, has, refused[id])
		}
	}
	if e := s.entities[domain.EntityKey{IntegrationID: "int_a", Kind: domain.KindContact, ID: "con_05"}]; e.Contact.Email != "later@example.com" {
		t.Errorf("con_05 email %q: its later event was not applied after the earlier one", e.Contact.Email)
	}
	failed := map[string]string{}
	for k, a := range s.audit {
		if a.Status == StatusFailed {
			failed[k.EventID] = a.Error
		}
	}
	if len(failed) != 3 || !strings.Contains(failed["e07"], "SQLSTATE 23514") || !strings.Contains(failed["e31"], "SQLSTATE 23514") ||
		!strings.Contains(failed["e40"], "has no contact id") {
		t.Errorf("FAILED events %v, want e07 and e31 with the database's error and e40 with its payload's", failed)
	}
	if s.saves > 40 {
		t.Errorf("%d transactions for %d records with 3 bad ones: the batch was not split in halves", s.saves, len(recs))
	}

	// With room for one refusal only, the second fails the build.
	s = &refusingStore{memStore: newMemStore(), refused: refused}
	err := applyAll(context.Background(), NewProjector("contacts", s, nil), recs, newRefusalBudget(1))
	if err == nil || !strings.Contains(err.Error(), "refused by the database") || !strings.Contains(err.Error(), "SQLSTATE 23514") {
		t.Fatalf("applyAll with a budget of 1: %v, want the build failed for too many refusals", err)
	}
}

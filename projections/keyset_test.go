package projections

import (
	"fmt"
	"testing"

	"github.com/roisystems/softprohub/domain"
)

func TestKeySetNeverDropsAKeyItSaw(t *testing.T) {
	t.Parallel()
	const n = 50_000
	s := NewKeySet(2 * n)
	query := func(lo, hi int) Query {
		var q Query
		for i := lo; i < hi; i++ {
			q.Events = append(q.Events, EventKey{IntegrationID: fmt.Sprintf("int_%d", i%7), EventID: fmt.Sprintf("evt_%d", i)})
			q.Entities = append(q.Entities, domain.EntityKey{IntegrationID: fmt.Sprintf("int_%d", i%7), Kind: domain.KindContact, ID: fmt.Sprintf("con_%d", i)})
		}
		return q
	}
	// First sight: (almost) every key is dropped from the lookup.
	first := query(0, n)
	s.narrow(&first)
	if len(first.Events) > n/50 || len(first.Entities) > n/50 {
		t.Fatalf("first sight kept %d events and %d entities of %d (want about 1 %%)", len(first.Events), len(first.Entities), n)
	}
	// Second sight: every key is looked up.
	again := query(0, n)
	s.narrow(&again)
	if len(again.Events) != n || len(again.Entities) != n {
		t.Fatalf("second sight kept %d events and %d entities of %d", len(again.Events), len(again.Entities), n)
	}
	// Keys added one by one (failures) are looked up too.
	s.add(EventKey{IntegrationID: "int_x", EventID: "failed"})
	q := Query{Events: []EventKey{{IntegrationID: "int_x", EventID: "failed"}}}
	if s.narrow(&q); len(q.Events) != 1 {
		t.Fatal("a failed event's key was dropped from the lookup")
	}
}

func TestKeySetIsCapped(t *testing.T) {
	t.Parallel()
	s := NewKeySet(1 << 40)
	if bits := s.f.Cap(); bits > maxKeySetBits {
		t.Fatalf("set of %d bits, cap %d", bits, maxKeySetBits)
	}
}

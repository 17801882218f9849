package redis

import (
	"testing"
	"time"
)

// Duplicates do take a token: with a limit of 3, an event admitted once
// and sent twice more leaves no token for a new event.
func TestGateDuplicatesTakeAToken(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	const limit = 3
	if a := mustAdmit(t, g, ticket(id, "evt-dup", limit, time.Minute)); !a.Allowed || a.Duplicate {
		t.Fatalf("first admit = %+v, want allowed, not duplicate", a)
	}
	for i := range limit - 1 {
		if a := mustAdmit(t, g, ticket(id, "evt-dup", limit, time.Minute)); !a.Allowed || !a.Duplicate {
			t.Fatalf("duplicate %d = %+v, want allowed duplicate", i+1, a)
		}
	}
	if a := mustAdmit(t, g, ticket(id, "evt-new", limit, time.Minute)); a.Allowed || a.Duplicate || a.RetryAfter <= 0 {
		t.Fatalf("new event after a first send and two duplicates = %+v, want rate limited: the duplicates took the other tokens", a)
	}
}

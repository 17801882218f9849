package redis

import (
	"testing"
	"time"
)

func TestGatePendingFingerprint(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	ctx := testContext(t)

	tk := ticket(id, "evt", 2, time.Minute)
	tk.PendingTTL = 300 * time.Millisecond
	if a := mustAdmit(t, g, tk); !a.Allowed || a.Duplicate || a.InFlight {
		t.Fatalf("first admit = %+v, want allowed and new", a)
	}
	if ttl, err := c.PTTL(ctx, dedupKey(id, "evt")).Result(); err != nil || ttl <= 0 || ttl > tk.PendingTTL {
		t.Fatalf("pending fingerprint TTL = %v (%v), want within (0, %v]", ttl, err, tk.PendingTTL)
	}
	// A redelivery meanwhile is in flight, not a duplicate.
	if a := mustAdmit(t, g, tk); !a.Allowed || a.Duplicate || !a.InFlight {
		t.Fatalf("admit during the append = %+v, want in flight", a)
	}
	// Checking again takes no token: the bucket of 2 is empty now, yet the
	// check answers.
	again := tk
	again.NoToken = true
	if a := mustAdmit(t, g, again); !a.Allowed || !a.InFlight {
		t.Fatalf("recheck = %+v, want allowed and in flight", a)
	}
	if a := mustAdmit(t, g, ticket(id, "other", 2, time.Minute)); a.Allowed {
		t.Fatalf("the recheck took a token: %+v", a)
	}

	// Never confirmed nor released (the process died): it expires.
	time.Sleep(tk.PendingTTL + 50*time.Millisecond)
	if a := mustAdmit(t, g, again); !a.Allowed || a.Duplicate || a.InFlight {
		t.Fatalf("recheck after the pending TTL = %+v, want new", a)
	}
	if err := g.Confirm(ctx, tk); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if ttl, err := c.PTTL(ctx, dedupKey(id, "evt")).Result(); err != nil || ttl <= 59*time.Minute {
		t.Fatalf("confirmed fingerprint TTL = %v (%v), want about DedupTTL", ttl, err)
	}
	if a := mustAdmit(t, g, again); !a.Allowed || !a.Duplicate || a.InFlight {
		t.Fatalf("recheck after Confirm = %+v, want duplicate", a)
	}
}

// Fingerprints written before pending ones existed hold "1": they are kept
// ones.
func TestGateOldFingerprintIsADuplicate(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	g := NewGate(c)
	id := testIntegration(t, c)
	if err := c.Set(testContext(t), dedupKey(id, "old"), "1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	tk := ticket(id, "old", 10, time.Minute)
	tk.PendingTTL = time.Second
	if a := mustAdmit(t, g, tk); !a.Allowed || !a.Duplicate || a.InFlight {
		t.Fatalf("admit = %+v, want duplicate", a)
	}
}

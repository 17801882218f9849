package tests

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// An OAuth token SoftPro stops taking is renewed and the page asked again,
// and that request takes its turn under the rate limit like every other:
// the run counts every request the API saw.
func TestSyncRenewsARefusedTokenUnderTheRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("renew", nil)
	s, srv := simulator(t, sim.Config{Records: 10}, id)
	e.connect(s, srv, id, true)
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("first run: %s %q", run.Status, run.Error)
	}
	before := s.Stats(id)
	s.RevokeTokens()
	if _, ok := s.Modify(id, domain.SyncTasks, ""); !ok {
		t.Fatal("no task to change")
	}
	run := e.syncNow(id)
	if run.Status != ingest.RunSucceeded {
		t.Fatalf("run after the token was revoked: %s %q", run.Status, run.Error)
	}
	after := s.Stats(id)
	if after.Unauthorized-before.Unauthorized != 1 || after.TokensIssued-before.TokensIssued != 1 {
		t.Fatalf("%d refused and %d tokens issued, want one of each", after.Unauthorized-before.Unauthorized, after.TokensIssued-before.TokensIssued)
	}
	if seen := after.Requests + after.Unauthorized - before.Requests - before.Unauthorized; run.Requests != seen {
		t.Fatalf("run counted %d requests under the limit, the API saw %d", run.Requests, seen)
	}
	e.matchesSimulator(s, id, 30*time.Second)
}

package tests

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// A dead letter that is the last record of its partition stays past the
// projection's checkpoint (no later record moves it), yet it waits for
// nothing: gaps names it once, as a poisoned event to retry, not also as
// records the projectors left behind; and the integration's queue is
// empty.
func TestGapsNameADeadLetterAtThePartitionsEndOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	id, secret := e.integration("a", nil)
	// A document without an id can never project.
	if r := e.send(signedWebhook(id, secret, event("evt_bad", domain.DocumentUploaded, time.Now(), `{"name":"no id"}`))); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Raw)
	}
	e.waitStatuses(id, map[string]string{"evt_bad": "FAILED"})
	time.Sleep(200 * time.Millisecond)
	g := cliJSON[gapsReport](e, "gaps", id, "--behind", "100ms")
	if len(g.Gaps) != 1 || g.Gaps[0].Kind != projections.GapPoisoned || g.Gaps[0].Records != 1 {
		t.Fatalf("gaps with a dead letter at the partition's end: %+v, want the poisoned event alone", g.Gaps)
	}
	if m := e.metrics(id); m.QueueDepth != 0 || m.OldestPendingJob != nil {
		t.Fatalf("queue with a dead letter only: %d, %v", m.QueueDepth, m.OldestPendingJob)
	}
}

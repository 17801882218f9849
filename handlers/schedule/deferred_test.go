package schedule

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/ingest"
)

// A run put off until the quota is back is queued once when it is, due at
// the latest slot that joined it meanwhile; a stopped scheduler queues
// none.
func TestDeferredRunsJoinAndQueueOnce(t *testing.T) {
	s := New(Config{}, &fakeStarter{}, fakeIntegrations{}, loadOnce{}, nil)
	slot := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	start := time.Now()
	s.deferRun(job{id: "int_a", trigger: ingest.TriggerScheduled, due: slot}, 200*time.Millisecond)
	s.deferRun(job{id: "int_a", trigger: ingest.TriggerScheduled, due: slot.Add(15 * time.Minute)}, 10*time.Millisecond)
	s.deferRun(job{id: "int_a", trigger: ingest.TriggerCatchUp, due: slot.Add(-time.Hour)}, 10*time.Millisecond)
	select {
	case j := <-s.queue:
		if waited := time.Since(start); waited < 200*time.Millisecond {
			t.Errorf("queued after %s, before the quota was back", waited)
		}
		if j.id != "int_a" || j.trigger != ingest.TriggerScheduled || !j.due.Equal(slot.Add(15*time.Minute)) {
			t.Errorf("queued %+v, want the 12:15 slot", j)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the deferred run was never queued")
	}
	select {
	case j := <-s.queue:
		t.Fatalf("queued a second run %+v", j)
	case <-time.After(400 * time.Millisecond):
	}

	s.deferRun(job{id: "int_b", trigger: ingest.TriggerScheduled, due: slot}, 50*time.Millisecond)
	s.dropDeferred()
	select {
	case j := <-s.queue:
		t.Fatalf("a stopped scheduler queued %+v", j)
	case <-time.After(300 * time.Millisecond):
	}
}

package schedule

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/ingest"
)

// A scheduler that starts just after a slot it was down for catches that
// slot up, even when the last scheduled run started a little after its own
// slot (staggered) and so less than an interval ago; one that ran the slot
// gets none.
func TestCatchUpRunsASlotMissedWhileDown(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 10, 0, time.UTC)
	missed := now.Add(-2*time.Hour + 10*time.Second) // 10:00:20, the 10:00 slot's run
	ran := now.Add(-5 * time.Second)                 // 12:00:05, the 12:00 slot's run
	ins := fakeIntegrations{
		{ID: "int_missed", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"},
			SyncFrequency: 120, LastScheduledSyncAt: &missed},
		{ID: "int_ran", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"},
			SyncFrequency: 120, LastScheduledSyncAt: &ran},
	}
	starter := &fakeStarter{}
	s := New(Config{Stagger: time.Millisecond, Now: func() time.Time { return now }}, starter, ins, loadOnce{}, nil)
	run(t, s)
	<-s.Started()
	time.Sleep(200 * time.Millisecond) // let queued runs start
	reqs := starter.requests()
	if len(reqs) != 1 || reqs[0].IntegrationID != "int_missed" || reqs[0].Trigger != ingest.TriggerCatchUp {
		t.Fatalf("runs %+v: want one catch-up of int_missed, whose 12:00 slot fell while the scheduler was down", reqs)
	}
}

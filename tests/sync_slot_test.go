package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
)

// Every scheduler process fires each cron slot: the first run started for
// the slot makes the others' skip, even once it has finished, while later
// slots, catch-ups found due later and manual runs go ahead.
func TestSyncScheduledSlotRunsOnceAcrossSchedulers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Once a year, from the scheduler's start: the service's own scheduler
	// never fires a slot of it during the test.
	id, _ := e.syncIntegration("slot", map[string]any{"syncEnabled": true, "syncFrequency": 525600})
	s, srv := simulator(t, sim.Config{Records: 5}, id)
	e.connect(s, srv, id, false)
	a, b := e.process(), e.process()
	ctx := ctxT(t, time.Minute)
	db := e.db()
	runs := func() string {
		return queryString(t, db, `SELECT trigger, status FROM sync_runs WHERE integration_id=$1 ORDER BY started_at`, id)
	}

	slot := time.Now().UTC().Truncate(time.Minute)
	if run, err := a.sys.Syncer.Sync(ctx, ingest.SyncRequest{IntegrationID: id, Trigger: ingest.TriggerScheduled, Due: slot}); err != nil || run.Status != ingest.RunSucceeded {
		t.Fatalf("first scheduler's run: %+v, %v", run, err)
	}
	_, err := b.sys.Syncer.Start(ctx, ingest.SyncRequest{IntegrationID: id, Trigger: ingest.TriggerScheduled, Due: slot})
	if !errors.Is(err, ingest.ErrSyncAlreadyRan) {
		t.Fatalf("second scheduler's run of the same slot: %v, want ErrSyncAlreadyRan", err)
	}
	if holder, _, _ := b.sys.Locks.Holder(context.Background(), ingest.SyncLockKey(id)); holder != "" {
		t.Fatalf("skipped run left the lock held by %s", holder)
	}
	if got := runs(); got != "scheduled succeeded" {
		t.Fatalf("runs after the same slot twice: %s", got)
	}

	// Found due after that run started: a catch-up, the next slot.
	for _, tr := range []ingest.Trigger{ingest.TriggerCatchUp, ingest.TriggerScheduled} {
		if run, err := b.sys.Syncer.Sync(ctx, ingest.SyncRequest{IntegrationID: id, Trigger: tr, Due: time.Now().UTC()}); err != nil || run.Status != ingest.RunSucceeded {
			t.Fatalf("%s run found due later: %+v, %v", tr, run, err)
		}
	}
	// A manual run is never a slot's.
	if run, err := a.sys.Syncer.Sync(ctx, ingest.SyncRequest{IntegrationID: id, Due: slot}); err != nil || run.Status != ingest.RunSucceeded {
		t.Fatalf("manual run: %+v, %v", run, err)
	}
	if got := runs(); got != "scheduled succeeded|catch-up succeeded|scheduled succeeded|manual succeeded" {
		t.Fatalf("runs: %s", got)
	}
}

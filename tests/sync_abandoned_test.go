package tests

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
)

// A process that died mid-run leaves its run recorded as running. The next
// run, once the lock has expired, records the dead one as failed, so the
// history and the gap report do not show a run in progress for ever.
func TestSyncRunOfADeadProcessIsRecordedAsAbandoned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("abandoned", nil)
	s, srv := simulator(t, sim.Config{Records: 10}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	ctx := ctxT(t, time.Minute)
	// The process starts a run (lock taken, run recorded) and dies before
	// it executes: nobody extends the lock or finishes the run.
	dead, err := p.syncer(t, ingest.SyncConfig{LockTTL: time.Second}, nil).Start(ctx, ingest.SyncRequest{IntegrationID: id})
	if err != nil {
		t.Fatal(err)
	}
	// Once its lock has expired, a run starts again.
	eventually(t, 10*time.Second, func() string {
		if holder, _, err := p.sys.Locks.Holder(ctx, ingest.SyncLockKey(id)); err != nil || holder != "" {
			return "lock still held by " + holder
		}
		return ""
	})
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("run: %+v", run)
	}
	db := e.db()
	if got := queryString(t, db, `SELECT status, error IS NOT NULL, finished_at IS NOT NULL FROM sync_runs WHERE id = $1`, dead.Run().ID); got != "failed true true" {
		t.Fatalf("run of the dead process: %s", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM sync_runs WHERE integration_id = $1 AND status = 'running'`, id); got != "0" {
		t.Fatalf("%s runs still running", got)
	}
}

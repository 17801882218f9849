package tests

import (
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
)

// A run that loses its lock to another run ends failed without touching
// the integration's sync status, which the run holding the lock now owns;
// a run that loses its lock to nobody records its failure there.
func TestSyncRunThatLostItsLockLeavesTheStatusToTheHolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("lost", nil)
	s, srv := simulator(t, sim.Config{Records: 40, MaxPage: 2}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	ctx := ctxT(t, 2*time.Minute)
	s.SetFaults(sim.Faults{Slow: 1, SlowDelay: 300 * time.Millisecond})
	syncer := p.syncer(t, ingest.SyncConfig{LockTTL: time.Second, RateWindow: time.Minute}, nil)
	key := ingest.SyncLockKey(id)

	// lose starts a run, waits until it holds the lock, takes the lock from
	// it (and keeps it when keep), and returns the run's end.
	lose := func(keep bool) (ingest.SyncRun, error) {
		t.Helper()
		st, err := syncer.Start(ctx, ingest.SyncRequest{IntegrationID: id})
		if err != nil {
			t.Fatal(err)
		}
		type end struct {
			run ingest.SyncRun
			err error
		}
		done := make(chan end, 1)
		go func() {
			run, err := st.Execute(ctx)
			done <- end{run, err}
		}()
		time.Sleep(500 * time.Millisecond)
		holder, _, err := p.sys.Locks.Holder(ctx, key)
		if err != nil || holder == "" {
			t.Fatalf("the run holds no lock: %q %v", holder, err)
		}
		if err := p.sys.Locks.Unlock(ctx, key, holder); err != nil {
			t.Fatal(err)
		}
		other, ok, err := p.sys.Locks.TryLock(ctx, key, time.Minute)
		if err != nil || !ok {
			t.Fatalf("take the lock: %v %v", ok, err)
		}
		if !keep {
			if err := p.sys.Locks.Unlock(ctx, key, other); err != nil {
				t.Fatal(err)
			}
		}
		var d end
		select {
		case d = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the run did not stop after losing its lock")
		}
		if keep {
			if holder, _, _ := p.sys.Locks.Holder(ctx, key); holder != other {
				t.Fatalf("lock holder %q after the run, want the other run's %q", holder, other)
			}
			if err := p.sys.Locks.Unlock(ctx, key, other); err != nil {
				t.Fatal(err)
			}
		}
		return d.run, d.err
	}
	status := func() string {
		in, err := p.store.Integration(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return in.SyncStatus
	}

	run, err := lose(true)
	if err == nil || run.Status != ingest.RunFailed {
		t.Fatalf("run that lost its lock: %+v, %v; want failed", run, err)
	}
	if got := status(); got != ingest.SyncStatusRunning {
		t.Fatalf("sync status %q after a run lost its lock to another, want %q (the other run's)", got, ingest.SyncStatusRunning)
	}

	run, err = lose(false)
	if err == nil || run.Status != ingest.RunFailed {
		t.Fatalf("run that lost its lock: %+v, %v; want failed", run, err)
	}
	if got := status(); got != ingest.SyncStatusError {
		t.Fatalf("sync status %q after a run lost its lock to nobody, want %q", got, ingest.SyncStatusError)
	}
}

package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// An integration switched off while its sync runs stops syncing at the next
// page: the run ends failed, and what it appended so far stays good.
func TestSyncRunStopsWhenItsIntegrationIsDeactivated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("switched-off", nil)
	// 30 records of each type in pages of 5 at 200 ms a page: about 5 s.
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 5, Faults: sim.Faults{Slow: 1, SlowDelay: 200 * time.Millisecond}}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	wait := slowRun(t, p, s, id, "")
	if _, err := p.store.Update(ctxT(t, time.Minute), id, func(in *domain.Integration) error { in.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	run, err := wait()
	if !errors.Is(err, ingest.ErrSyncDisabled) || run.Status != ingest.RunFailed || run.Requests >= 24 {
		t.Fatalf("run of a deactivated integration: %+v, %v", run, err)
	}
	if holder, _, _ := p.sys.Locks.Holder(context.Background(), ingest.SyncLockKey(id)); holder != "" {
		t.Fatalf("lock still held by %s", holder)
	}
}

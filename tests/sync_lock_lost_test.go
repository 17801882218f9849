package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
)

// A run whose lock another run took meanwhile (the key expired or was
// evicted between two extensions) records its own outcome but leaves the
// integration's sync status to the run holding the lock now, even when it
// ends well.
func TestSyncThatLostItsLockLeavesTheStatusToTheHolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("lost", nil)
	s, srv := simulator(t, sim.Config{Records: 2, Faults: sim.Faults{Slow: 1, SlowDelay: 300 * time.Millisecond}}, id)
	e.connect(s, srv, id, false)
	finished := make(chan ingest.SyncRun, 1)
	go func() { finished <- e.syncNow(id) }()
	rdb := redisOf(t, e)
	key := ingest.SyncLockKey(id)
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(context.Background(), key).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the run never took its lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another run holds the lock now.
	if err := rdb.Set(context.Background(), key, "other-host:1:token", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	run := <-finished
	if run.Status != ingest.RunSucceeded {
		t.Fatalf("run: %s %q, want succeeded (its records are on the log)", run.Status, run.Error)
	}
	status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	var got struct {
		Data struct {
			Integration struct {
				SyncStatus string     `json:"syncStatus"`
				LastSyncAt *time.Time `json:"lastSyncAt"`
			} `json:"integration"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &got); status != http.StatusOK || err != nil {
		t.Fatalf("integration: %d %s", status, body)
	}
	if in := got.Data.Integration; in.SyncStatus != "RUNNING" || in.LastSyncAt != nil {
		t.Fatalf("sync status %s, last sync %v: want RUNNING as the holder set it, untouched", in.SyncStatus, in.LastSyncAt)
	}
	if v := rdb.Get(context.Background(), key).Val(); v != "other-host:1:token" {
		t.Fatalf("lock holds %q, want the other run's token", v)
	}
}

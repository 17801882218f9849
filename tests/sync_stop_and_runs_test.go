package tests

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// POST …/sync naming a type that does not exist is refused with 400 naming
// it, and starts no run; so is one whose wait is not a boolean.
func TestSyncOfAnUnknownTypeIsRefusedNamingIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("unknowntype", nil)
	s, srv := simulator(t, sim.Config{Records: 2}, id)
	e.connect(s, srv, id, false)
	status, body := e.call(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", e.Token,
		map[string]any{"types": []string{domain.SyncContacts, "invoices"}})
	if status != http.StatusBadRequest || !strings.Contains(string(body), "invoices") {
		t.Fatalf("sync of an unknown type: %d %s, want 400 naming it", status, body)
	}
	if n := s.Stats(id).Requests; n != 0 {
		t.Fatalf("the refused sync sent %d requests", n)
	}
	// A wait that is not a boolean is refused too, not taken as false
	// (which would start a run in the background).
	status, body = e.call(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=yes", e.Token, nil)
	if code, _ := errCode(body); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(string(body), "wait") {
		t.Fatalf("sync?wait=yes: %d %s, want 400 naming wait", status, body)
	}
	if n := s.Stats(id).Requests; n != 0 {
		t.Fatalf("the refused syncs sent %d requests", n)
	}
	if got := queryString(t, e.db(), `SELECT count(*) FROM sync_runs WHERE integration_id = $1`, id); got != "0" {
		t.Fatalf("the refused syncs recorded %s runs", got)
	}
}

// slowRun starts a run of id against a slow simulator in the background
// and returns once it pages.
func slowRun(t *testing.T, p *process, s *sim.Sim, id string, trigger ingest.Trigger) (wait func() (ingest.SyncRun, error)) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	done := make(chan struct{})
	var run ingest.SyncRun
	var err error
	go func() {
		defer close(done)
		run, err = p.sys.Syncer.Sync(ctx, ingest.SyncRequest{IntegrationID: id, Trigger: trigger})
	}()
	eventually(t, 10*time.Second, func() string {
		if n := s.Stats(id).Requests; n < 2 {
			return "run has not started paging"
		}
		return ""
	})
	return func() (ingest.SyncRun, error) {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("run did not stop within 30 s")
		}
		return run, err
	}
}

// An integration deleted while its sync runs stops the run at the next
// page, as a deactivated one does.
func TestSyncRunStopsWhenItsIntegrationIsDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("deleted-midrun", nil)
	// 30 records of each type in pages of 5 at 200 ms a page: about 5 s.
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 5, Faults: sim.Faults{Slow: 1, SlowDelay: 200 * time.Millisecond}}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	wait := slowRun(t, p, s, id, ingest.TriggerManual)
	if _, err := e.db().Exec(context.Background(), `DELETE FROM softpro_integrations WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	run, err := wait()
	if !errors.Is(err, ingest.ErrSyncDisabled) || run.Status != ingest.RunFailed ||
		!strings.Contains(run.Error, "integration deleted") || run.Requests >= 24 {
		t.Fatalf("run of a deleted integration: %+v, %v", run, err)
	}
	sent := s.Stats(id).Requests
	time.Sleep(time.Second)
	if n := s.Stats(id).Requests; n != sent {
		t.Fatalf("pages still asked for after the run ended: %d → %d", sent, n)
	}
	if holder, _, _ := p.sys.Locks.Holder(context.Background(), ingest.SyncLockKey(id)); holder != "" {
		t.Fatalf("lock still held by %s", holder)
	}
}

// A scheduled run stops at the next page once its integration's sync is
// turned off, though the integration stays active.
func TestScheduledSyncRunStopsWhenSyncIsTurnedOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Once a year: the service's own scheduler never fires during the test.
	id, _ := e.syncIntegration("sync-off-midrun", map[string]any{"syncEnabled": true, "syncFrequency": 525600})
	s, srv := simulator(t, sim.Config{Records: 30, MaxPage: 5, Faults: sim.Faults{Slow: 1, SlowDelay: 200 * time.Millisecond}}, id)
	e.connect(s, srv, id, false)
	p := e.process()
	wait := slowRun(t, p, s, id, ingest.TriggerScheduled)
	if _, err := p.store.Update(context.Background(), id, func(in *domain.Integration) error { in.SyncEnabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	run, err := wait()
	if !errors.Is(err, ingest.ErrSyncDisabled) || run.Status != ingest.RunFailed ||
		!strings.Contains(run.Error, "switched off") || run.Requests >= 24 {
		t.Fatalf("scheduled run whose sync was turned off: %+v, %v", run, err)
	}
	if got := queryString(t, e.db(), `SELECT trigger, status FROM sync_runs WHERE integration_id = $1`, id); got != "scheduled failed" {
		t.Fatalf("recorded run: %s", got)
	}
	if holder, _, _ := p.sys.Locks.Holder(context.Background(), ingest.SyncLockKey(id)); holder != "" {
		t.Fatalf("lock still held by %s", holder)
	}
}

// GET …/sync/runs lists the integration's runs newest first, 20 unless
// limit asks otherwise.
func TestSyncRunsListNewestFirstTwentyByDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("runlist", map[string]any{"syncTypes": []string{domain.SyncContacts}})
	s, srv := simulator(t, sim.Config{Records: 1}, id)
	e.connect(s, srv, id, false)
	var made []int64
	for range 23 {
		made = append(made, e.syncNow(id).ID)
	}
	list := func(query string) []ingest.SyncRun {
		t.Helper()
		status, body := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/runs"+query, e.Token, nil)
		if status != http.StatusOK {
			t.Fatalf("runs%s: %d %s", query, status, body)
		}
		var resp struct {
			Data struct {
				Runs []ingest.SyncRun `json:"runs"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.Data.Runs
	}
	check := func(query string, want int) {
		t.Helper()
		runs := list(query)
		if len(runs) != want {
			t.Fatalf("runs%s: %d runs, want %d", query, len(runs), want)
		}
		for i, r := range runs {
			if w := made[len(made)-1-i]; r.ID != w {
				t.Fatalf("runs%s: run %d is %d, want %d (newest first)", query, i, r.ID, w)
			}
			if i > 0 && r.StartedAt.After(runs[i-1].StartedAt) {
				t.Fatalf("runs%s: run %d started after the one listed before it", query, i)
			}
		}
	}
	check("", 20)
	check("?limit=5", 5)
	check("?limit=100", 23)
}

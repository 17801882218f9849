package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/ingest"
)

func TestSyncFullMatchesSimulatorExactly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.syncIntegration("full-key", nil)
	b, _ := e.syncIntegration("full-oauth", nil)
	s, srv := simulator(t, sim.Config{Records: 120, MaxPage: 50}, a, b)
	e.connect(s, srv, a, false)
	e.connect(s, srv, b, true)

	for _, id := range []string{a, b} {
		run := e.syncNow(id)
		if run.Status != ingest.RunSucceeded || run.Error != "" {
			t.Fatalf("%s: run %+v", id, run)
		}
		for _, typ := range domain.SyncTypes {
			if run.Records[typ] != 120 {
				t.Errorf("%s: %s records = %d, want 120", id, typ, run.Records[typ])
			}
		}
		// 120 records in pages of 50: three pages per type.
		if run.Requests != 12 {
			t.Errorf("%s: requests = %d, want 12", id, run.Requests)
		}
	}
	e.matchesSimulator(s, a, 60*time.Second)
	e.matchesSimulator(s, b, 60*time.Second)
	if st := s.Stats(b); st.TokensIssued != 1 {
		t.Errorf("oauth tokens issued = %d, want 1 (cached)", st.TokensIssued)
	}
	// Every record went to softpro.sync.v1 as a sync event keyed by its
	// integration.
	recs := e.records(domain.TopicSync)
	if len(recs) != 2*4*120 {
		t.Fatalf("sync topic holds %d records, want %d", len(recs), 2*4*120)
	}
	for _, r := range recs[:5] {
		env, err := r.Envelope, r.Err
		if err != nil || env.Source != domain.SourceSync || env.IntegrationID != r.Key || !strings.HasSuffix(string(env.Type), ".synced") {
			t.Fatalf("record %s: %+v %v", r.Key, env, err)
		}
	}

	// The integration's sync fields and the run history.
	_, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+a, e.Token, nil)
	if !strings.Contains(string(body), `"syncStatus":"IDLE"`) || !strings.Contains(string(body), `"lastSyncError":null`) ||
		strings.Contains(string(body), `"lastSyncAt":null`) {
		t.Errorf("integration after sync: %s", body)
	}
	status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+a+"/sync/runs", e.Token, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"succeeded"`) || !strings.Contains(string(body), `"transactions":120`) {
		t.Errorf("runs: %d %s", status, body)
	}
	// Analysts may not run syncs.
	analyst := e.tokenFor("analyst")
	if status, _ := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+a+"/sync", analyst, nil); status != http.StatusForbidden {
		t.Errorf("analyst sync: %d, want 403", status)
	}
}

func TestSyncIncrementalPicksUpOnlyChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("incr", nil)
	s, srv := simulator(t, sim.Config{Records: 80, MaxPage: 30}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 60*time.Second)
	base := e.projectedEvents(id)
	if base != "320" {
		t.Fatalf("projected events after full sync = %s, want 320", base)
	}

	// The watermark is the newest record pulled; the next run asks from one
	// overlap (a minute) before it, so those records come again, and are
	// passed over: they were appended already.
	overlap := 0
	for _, typ := range domain.SyncTypes {
		recs := s.Snapshot(id, typ)
		mark := recs[len(recs)-1].UpdatedAt
		for _, r := range recs {
			if !r.UpdatedAt.Before(mark.Add(-time.Minute)) {
				overlap++
			}
		}
	}
	changed := 0
	for _, typ := range domain.SyncTypes {
		for range 3 {
			if _, ok := s.Modify(id, typ, ""); ok {
				changed++
			}
		}
	}
	served := s.Stats(id).RecordsServed
	run := e.syncNow(id)
	// Only the changed records and those inside the overlap come back, and
	// only the changed ones are appended.
	if got := s.Stats(id).RecordsServed - served; got < changed || got > changed+overlap {
		t.Errorf("simulator served %d records, want %d changed + at most %d in the overlap", got, changed, overlap)
	}
	if run.Total() != changed {
		t.Fatalf("incremental run appended %d records, want the %d changed: %+v", run.Total(), changed, run)
	}
	if got, want := e.projectedEvents(id), fmt.Sprint(320+changed); got != want {
		eventually(t, 30*time.Second, func() string {
			if got := e.projectedEvents(id); got != want {
				return "projected events " + got + ", want " + want
			}
			return ""
		})
	}
	e.matchesSimulator(s, id, 60*time.Second)

	// Nothing changed: the records inside the overlap come again and are
	// neither appended nor counted.
	before := e.projectedEvents(id)
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded || run.Total() != 0 {
		t.Errorf("a sync without changes appended %d records: %+v", run.Total(), run)
	}
	time.Sleep(500 * time.Millisecond) // let the projector see any new event
	if after := e.projectedEvents(id); after != before {
		t.Errorf("a sync without changes added events: %s → %s", before, after)
	}
}

func TestSyncSurvives429And5xxWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("faults", nil)
	s, srv := simulator(t, sim.Config{Records: 100, MaxPage: 20, Faults: sim.Faults{
		RateLimited: 0.15, RetryAfter: time.Second, ServerErrors: 0.2, Edges: true,
	}}, id)
	e.connect(s, srv, id, false)
	run := e.syncNow(id)
	if run.Status != ingest.RunSucceeded {
		t.Fatalf("run under faults: %+v", run)
	}
	st := s.Stats(id)
	if st.Injected429 == 0 || st.Injected5xx == 0 || run.RateLimited != st.Injected429 || run.Retries != st.Injected5xx {
		t.Fatalf("faults seen: simulator %+v, run %+v", st, run)
	}
	e.matchesSimulator(s, id, 60*time.Second)
	// Edge-case pages repeat records; each is projected once.
	if got := e.projectedEvents(id); got != "400" {
		t.Fatalf("projected events = %s, want 400", got)
	}
}

func TestSyncRunThatCannotFinishIsRecordedAndNextResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("resume", nil)
	s, srv := simulator(t, sim.Config{Records: 60, MaxPage: 20}, id)
	e.connect(s, srv, id, false)
	s.SetFaults(sim.Faults{ServerErrors: 1})
	run := e.syncNow(id)
	if run.Status != ingest.RunFailed || !strings.Contains(run.Error, "status 5") || run.Retries != 4 {
		t.Fatalf("failing run: %+v", run)
	}
	_, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	if !strings.Contains(string(body), `"syncStatus":"ERROR"`) || !strings.Contains(string(body), `"lastSyncAt":null`) {
		t.Fatalf("integration after a failed run: %s", body)
	}
	s.SetFaults(sim.Faults{})
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("next run: %+v", run)
	}
	e.matchesSimulator(s, id, 60*time.Second)
}

func TestSyncAndWebhooksInterleaveNewestWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.syncIntegration("mix", nil)
	s, srv := simulator(t, sim.Config{Records: 20}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 60*time.Second)

	hook := func(c sim.Change, n int) {
		t.Helper()
		evt := fmt.Sprintf("evt_mix_%d", n)
		r := e.send(signedWebhook(id, secret, sim.WebhookFor(c, evt)))
		if r.Status != http.StatusOK {
			t.Fatalf("webhook %s: %d %s", evt, r.Status, r.Raw)
		}
	}
	// A webhook held back behind a newer change that the sync pulls: the
	// late webhook is older and changes nothing.
	first, _ := s.Modify(id, domain.SyncTransactions, "txn_000001")
	second, _ := s.Modify(id, domain.SyncTransactions, "txn_000001")
	e.syncNow(id)
	// The sync's record and the webhook go to different topics, projected
	// independently: the webhook is sent once the sync's record is applied,
	// so that it arrives late, as the case says.
	db := e.db()
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT coalesce(max(softpro_updated_at)::text, '') FROM transactions WHERE integration_id=$1 AND id='txn_000001'`, id)
		if !strings.HasPrefix(got, second.Record.UpdatedAt.UTC().Format("2006-01-02 15:04:05")) {
			return "transaction updated_at " + got + ", want " + second.Record.UpdatedAt.String()
		}
		return ""
	})
	hook(first, 1)
	// A webhook newer than what the sync pulled wins over the sync.
	third, _ := s.Modify(id, domain.SyncContacts, "con_000002")
	e.syncNow(id)
	fourth, _ := s.Modify(id, domain.SyncContacts, "con_000002")
	hook(fourth, 2)
	e.matchesSimulator(s, id, 60*time.Second)
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT event_id, applied FROM webhook_events WHERE integration_id=$1 AND event_id LIKE 'evt_mix_%' ORDER BY event_id`, id)
		if got != "evt_mix_1 false|evt_mix_2 true" {
			return "webhook outcomes: " + got
		}
		return ""
	})
	if got := queryString(t, db, `SELECT softpro_updated_at FROM transactions WHERE integration_id=$1 AND id='txn_000001'`, id); !strings.HasPrefix(got, second.Record.UpdatedAt.Format("2006-01-02 15:04:05")) {
		t.Errorf("transaction updated_at %s, want %s", got, second.Record.UpdatedAt)
	}
	_ = third
}

// tokenFor mints a token of another role.
func (e *Env) tokenFor(role string) string {
	e.t.Helper()
	tok, err := httpapi.IssueToken([]byte(e.Cfg.JWTSecret), "sync-tester", role, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

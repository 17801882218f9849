package tests

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/schedule"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// sync run pulls an integration's records from the SoftPro API into the
// read models, the types asked for only; sync status shows the run, as the
// API's sync status and runs do.
func TestCLISyncRunBringsTheSimulatorsRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.syncIntegration("clisync", nil)
	const records = 10
	s, srv := simulator(t, sim.Config{Records: records, MaxPage: 4}, id)
	e.connect(s, srv, id, false)

	run := cliJSON[ingest.SyncRun](e, "sync", "run", id, "--types", "transactions,contacts")
	if run.ID == 0 || run.IntegrationID != id || run.Status != ingest.RunSucceeded || run.Trigger != ingest.TriggerManual ||
		!reflect.DeepEqual(run.Types, []string{domain.SyncTransactions, domain.SyncContacts}) ||
		run.Records[domain.SyncTransactions] != records || run.Records[domain.SyncContacts] != records || run.Requests < 6 {
		t.Fatalf("sync run of two types: %+v", run)
	}
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT (SELECT count(*) FROM transactions WHERE integration_id=$1), (SELECT count(*) FROM contacts WHERE integration_id=$1),
			(SELECT count(*) FROM documents WHERE integration_id=$1) + (SELECT count(*) FROM tasks WHERE integration_id=$1)`, id)
		if got != "10 10 0" {
			return "transactions, contacts, documents and tasks: " + got + ", want 10 10 0"
		}
		return ""
	})
	runs := adminData[struct {
		Runs []ingest.SyncRun `json:"runs"`
	}](e, http.MethodGet, "/api/v1/integrations/softpro/"+id+"/sync/runs", nil).Runs
	// The database keeps times to the microsecond.
	stored := run
	stored.StartedAt = run.StartedAt.Truncate(time.Microsecond)
	finished := run.FinishedAt.Truncate(time.Microsecond)
	stored.FinishedAt = &finished
	if len(runs) != 1 || !reflect.DeepEqual(runs[0], stored) {
		t.Fatalf("the CLI printed the run\n%+v\nthe API lists\n%+v", run, runs)
	}

	// --full pulls every record of the integration's types again.
	run = cliJSON[ingest.SyncRun](e, "sync", "run", id, "--full")
	if run.Status != ingest.RunSucceeded || run.Total() != records*len(domain.SyncTypes) {
		t.Fatalf("full sync run: %+v, want %d records of each type", run, records)
	}
	e.matchesSimulator(s, id, 30*time.Second)

	type status struct {
		Integrations []schedule.IntegrationStatus `json:"integrations"`
	}
	find := func(st status) schedule.IntegrationStatus {
		t.Helper()
		for _, in := range st.Integrations {
			if in.IntegrationID == id {
				return in
			}
		}
		t.Fatalf("sync status does not list %s: %+v", id, st)
		return schedule.IntegrationStatus{}
	}
	cli := find(cliJSON[status](e, "sync", "status"))
	if cli.LastRun == nil || cli.LastRun.ID != run.ID || cli.SyncStatus != "IDLE" || cli.LastSyncAt == nil || cli.Scheduled {
		t.Fatalf("sync status after the runs: %+v", cli)
	}
	if api := find(adminData[status](e, http.MethodGet, "/api/v1/integrations/softpro/sync/status", nil)); !reflect.DeepEqual(cli, api) {
		t.Fatalf("sync status: the CLI reports\n%+v\nthe API\n%+v", cli, api)
	}

	unconnected, _ := e.syncIntegration("clinoconn", nil)
	e.cliRefused("no SoftPro API connection", "sync", "run", unconnected)
	e.cliRefused(`unknown sync type "deeds"`, "sync", "run", id, "--types", "deeds")
	e.cliRefused("integration "+e.id("nobody")+": not found", "sync", "run", e.id("nobody"))
	e.cliRefused("accepts 1 arg(s), received 0", "sync", "run")
	if got := queryString(t, db, `SELECT count(*) FROM sync_runs WHERE integration_id = ANY($1)`, []string{id, unconnected}); got != "2" {
		t.Fatalf("%s sync runs recorded, want only the two that ran", got)
	}

	// A run the SoftPro API fails is printed, failed, and the command
	// fails with its error.
	refused, _ := e.syncIntegration("clibadkey", nil)
	if status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/"+refused+"/sync/connection", e.Token,
		map[string]any{"baseUrl": srv.URL + "/t/" + id, "auth": "api_key", "apiKey": "not-the-key"}); status != http.StatusOK {
		t.Fatalf("set connection: %d %s", status, body)
	}
	out, stderr, err := e.cli("sync", "run", refused)
	var failed ingest.SyncRun
	if jerr := json.Unmarshal([]byte(out), &failed); err == nil || jerr != nil || failed.ID == 0 || failed.Status != ingest.RunFailed ||
		failed.Error == "" || !strings.Contains(stderr, "softprohub: ") {
		t.Fatalf("sync run refused by the API: %v\n%s\n%s\nwant the failed run printed and a failure", err, out, stderr)
	}
	if got := queryString(t, db, `SELECT sync_status FROM softpro_integrations WHERE id = $1`, refused); got != "ERROR" {
		t.Fatalf("sync status after a failed run: %s, want ERROR", got)
	}
}

// resync pulls every record from the SoftPro API and refolds what
// disagrees with the log, as POST …/resync does, and refuses what the
// route refuses.
func TestCLIResyncRestoresTheSimulatorsRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.syncIntegration("cliresync", nil)
	const records = 8
	s, srv := simulator(t, sim.Config{Records: records}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 30*time.Second)
	tamper(t, db, id, `DELETE FROM transactions WHERE integration_id=$1`, `UPDATE tasks SET title='edited' WHERE integration_id=$1`)

	rep := cliJSON[projections.ResyncReport](e, "resync", id)
	if rep.IntegrationID != id || rep.Synced != records*len(domain.SyncTypes) || rep.Consistency.Score != 100 ||
		len(rep.Consistency.Issues) != 0 || rep.Replay.Applied == 0 {
		t.Fatalf("resync: %+v", rep)
	}
	e.matchesSimulator(s, id, 30*time.Second)
	api := adminData[projections.ResyncReport](e, http.MethodPost, "/api/v1/integrations/softpro/"+id+"/resync", nil)
	if api.Synced != rep.Synced {
		t.Fatalf("resync pulled %d records from the CLI, %d over HTTP", rep.Synced, api.Synced)
	}
	sameReport(t, "resync", rep.Consistency, api.Consistency)

	// A resync the sync job refuses is refused, as over HTTP.
	unconnected, _ := e.syncIntegration("clinoconn", nil)
	e.cliRefused("no SoftPro API connection", "resync", unconnected)
	if status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+unconnected+"/resync", e.Token, nil); status != http.StatusConflict {
		t.Fatalf("resync without a connection over HTTP: %d %s", status, body)
	}
}

// gaps asks the SoftPro API, with the stored connection SECRETS_KEY opens,
// which records the read models lack, as GET …/gaps does; gaps fill syncs
// them.
func TestCLIGapsFillSyncsWhatTheAPIChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("clidatagap", nil)
	s, srv := simulator(t, sim.Config{Records: 6}, id)
	e.connect(s, srv, id, false)
	e.syncNow(id)
	e.matchesSimulator(s, id, 30*time.Second)
	// SoftPro changes records; no webhook and no sync brings them.
	for _, typ := range domain.SyncTypes {
		if _, ok := s.Modify(id, typ, ""); !ok {
			t.Fatalf("simulator changed no %s", typ)
		}
	}

	g := cliJSON[gapsReport](e, "gaps", id)
	var missing int64
	for _, gap := range g.Gaps {
		if gap.Kind != projections.GapData || gap.Fill != projections.FillSyncWindow {
			t.Errorf("unexpected gap %+v", gap)
		}
		missing += gap.Records
	}
	if missing != int64(len(domain.SyncTypes)) || g.NotChecked != nil {
		t.Fatalf("gaps name %d changed records, want %d: %+v", missing, len(domain.SyncTypes), g)
	}
	if api := e.gaps(id); !reflect.DeepEqual(g.Gaps, api) {
		t.Fatalf("gaps: the CLI reports\n%+v\nthe API\n%+v", g.Gaps, api)
	}

	fill := cliJSON[projections.FillReport](e, "gaps", "fill", id)
	if fill.Synced < int(missing) || len(fill.Errors) != 0 {
		t.Fatalf("gaps fill: %+v", fill)
	}
	e.matchesSimulator(s, id, 30*time.Second)
}

// With --dev the commands take the secrets serve --dev keeps in DATA_DIR:
// the stored connection opens, so sync runs and gaps checks every side;
// without --dev or SECRETS_KEY they say what is missing.
func TestCLIDevTakesTheSecretsOfDataDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("clidev", nil)
	s, srv := simulator(t, sim.Config{Records: 3}, id)
	e.connect(s, srv, id, false)
	secrets := "JWT_SECRET=" + e.Cfg.JWTSecret + "\nSECRETS_KEY=" + e.Cfg.SecretsKey + "\n"
	if err := os.WriteFile(app.DevSecretsPath(e.Cfg.DataDir), []byte(secrets), 0o600); err != nil {
		t.Fatal(err)
	}
	noKey := []string{"SECRETS_KEY=", "JWT_SECRET="}

	out, stderr, err := e.cliWith(noKey, "sync", "run", id, "--dev")
	var run ingest.SyncRun
	if jerr := json.Unmarshal([]byte(out), &run); err != nil || jerr != nil || run.Status != ingest.RunSucceeded || run.Total() != 3*len(domain.SyncTypes) {
		t.Fatalf("sync run --dev: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = e.cliWith(noKey, "gaps", id, "--dev")
	var g gapsReport
	if jerr := json.Unmarshal([]byte(out), &g); err != nil || jerr != nil || g.NotChecked != nil || strings.Contains(stderr, "not checked") {
		t.Fatalf("gaps --dev: %v\n%s%s\nwant every side checked", err, out, stderr)
	}
	e.cliFails(noKey, "JWT_SECRET and SECRETS_KEY must be set (or run with --dev", "sync", "run", id)

	// A DATA_DIR without them: --dev says so and writes none (a key of
	// its own would seal secrets the server cannot open).
	emptyDir := t.TempDir()
	empty := []string{"SECRETS_KEY=", "JWT_SECRET=", "DATA_DIR=" + emptyDir}
	for _, args := range [][]string{{"integrations", "list", "--dev"}, {"sync", "run", id, "--dev"}, {"gaps", id, "--dev"}} {
		e.cliFails(empty, "serve --dev, which make run starts, writes them", args...)
	}
	if _, err := os.Stat(app.DevSecretsPath(emptyDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a command with --dev wrote dev secrets: %v", err)
	}
}

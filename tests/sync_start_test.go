package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
)

// A run whose start cannot mark its integration RUNNING is recorded as
// failed, not left running until a later run calls it abandoned.
func TestSyncStartThatCannotMarkRunningEndsItsRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("nomark", nil)
	s, srv := simulator(t, sim.Config{Records: 2}, id)
	e.connect(s, srv, id, false)
	db := e.db()
	for _, q := range []string{
		`CREATE FUNCTION refuse_running() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.sync_status = 'RUNNING' THEN RAISE EXCEPTION 'refused: RUNNING'; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER refuse_running BEFORE UPDATE ON softpro_integrations FOR EACH ROW EXECUTE FUNCTION refuse_running()`,
	} {
		if _, err := db.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/sync?wait=true", e.Token, nil)
	if status != http.StatusInternalServerError {
		t.Fatalf("sync: %d %s, want 500", status, body)
	}
	got := queryString(t, db, `SELECT status || ' ' || (finished_at IS NOT NULL) || ' ' || coalesce(error, '') FROM sync_runs WHERE integration_id = $1`, id)
	if !strings.HasPrefix(got, "failed true mark running:") || !strings.Contains(got, "refused: RUNNING") {
		t.Fatalf("run recorded as %q, want failed and finished, naming the refusal", got)
	}
	// The lock was released: once the integration can be marked, a run goes.
	if _, err := db.Exec(t.Context(), `DROP TRIGGER refuse_running ON softpro_integrations`); err != nil {
		t.Fatal(err)
	}
	if run := e.syncNow(id); run.Status != "succeeded" {
		t.Fatalf("run after the fault: %s %q", run.Status, run.Error)
	}
}

package tests

import (
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// While the SoftPro API does not answer (its port closed), gaps still
// reports every other side, the failed sync and a row deleted behind the
// system's back, and names the data side as not checked with why (200,
// exit status 0); gaps fill still restores the row, and reports the data
// side not checked and the sync it could not run: partial, 200 over HTTP,
// exit status 3 on the command line, its report printed.
func TestGapsAndFillWhileTheSoftProAPIIsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("apidown", nil)
	s, srv := simulator(t, sim.Config{Records: 3}, id)
	e.connect(s, srv, id, false)
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("first sync: %+v", run)
	}
	e.matchesSimulator(s, id, 60*time.Second)
	srv.Close()
	if run := e.syncNow(id); run.Status != ingest.RunFailed {
		t.Fatalf("sync with the API down: %+v, want failed", run)
	}
	db := e.db()
	txn := s.Snapshot(id, "transactions")[0].ID
	deleteRow := func() {
		t.Helper()
		tamper(t, db, id, `DELETE FROM transactions WHERE integration_id=$1 AND id='`+txn+`'`)
	}
	deleteRow()

	kinds := func(gaps []projections.Gap) []string {
		var out []string
		for _, g := range gaps {
			out = append(out, g.Kind)
		}
		return out
	}
	wantKinds := []string{projections.GapSyncFailed, projections.GapReadModel}
	dataDown := func(what string, notChecked []string, reasons map[string]string) {
		t.Helper()
		if !slices.Equal(notChecked, []string{projections.SideData}) || !strings.Contains(reasons[projections.SideData], "connection refused") {
			t.Errorf("%s: notChecked %v, reasons %v, want the data side, the API's failure its reason", what, notChecked, reasons)
		}
	}

	// GET …/gaps: 200, the other sides, the data side not checked.
	status, raw := e.callOK(http.MethodGet, "/api/v1/integrations/softpro/"+id+"/gaps")
	var api struct {
		Data apiDownReport `json:"data"`
	}
	if err := json.Unmarshal(raw, &api); status != http.StatusOK || err != nil {
		t.Errorf("GET gaps with the API down: %d %s, want 200", status, raw)
	}
	if k := kinds(api.Data.Gaps); !slices.Equal(k, wantKinds) {
		t.Errorf("GET gaps with the API down: %v, want %v", k, wantKinds)
	}
	dataDown("GET gaps", api.Data.NotChecked, api.Data.NotCheckedReasons)

	// softprohub gaps: exit status 0, the same, and why on stderr.
	out, stderr, err := e.cli("gaps", id)
	var cli apiDownReport
	if jerr := json.Unmarshal([]byte(out), &cli); err != nil || jerr != nil {
		t.Errorf("softprohub gaps with the API down: %v %v\n%s%s, want exit status 0 and a report", err, jerr, out, stderr)
	}
	if k := kinds(cli.Gaps); !slices.Equal(k, wantKinds) {
		t.Errorf("softprohub gaps with the API down: %v, want %v", k, wantKinds)
	}
	dataDown("softprohub gaps", cli.NotChecked, cli.NotCheckedReasons)
	if !strings.Contains(stderr, "the data side was not checked, because softpro api") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("softprohub gaps with the API down: stderr %q, want the data side and the API's failure named", stderr)
	}

	// POST …/gaps/fill: 200, the row back, partial.
	status, raw = e.callOK(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/gaps/fill")
	var filled struct {
		Data apiDownReport `json:"data"`
	}
	if err := json.Unmarshal(raw, &filled); status != http.StatusOK || err != nil {
		t.Errorf("POST gaps/fill with the API down: %d %s, want 200", status, raw)
	}
	fill := filled.Data
	dataDown("POST gaps/fill", fill.NotChecked, fill.NotCheckedReasons)
	if !fill.Partial || len(fill.Errors) != 1 || !strings.HasPrefix(fill.Errors[0], projections.GapSyncFailed+": ") || len(fill.Replayed) == 0 {
		t.Errorf("POST gaps/fill with the API down: %+v, want partial, the sync it could not run in errors, a refold", fill)
	}
	// The refold is done when the fill answers.
	restored := func(what string) {
		t.Helper()
		if n := queryString(t, db, `SELECT count(*) FROM transactions WHERE integration_id = $1 AND id = $2`, id, txn); n != "1" {
			t.Errorf("%s with the API down: %s rows of the deleted transaction, want it restored", what, n)
		}
	}
	restored("POST gaps/fill")

	// softprohub gaps fill: exit status 3, its report printed, the row back.
	deleteRow()
	out, stderr, err = e.cli("gaps", "fill", id)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(stderr, "partial") {
		t.Errorf("softprohub gaps fill with the API down: %v\n%s, want exit status 3 saying it was partial", err, stderr)
	}
	var cfill apiDownReport
	if err := json.Unmarshal([]byte(out), &cfill); err != nil {
		t.Errorf("softprohub gaps fill with the API down printed no report: %v\n%s%s", err, out, stderr)
	}
	dataDown("softprohub gaps fill", cfill.NotChecked, cfill.NotCheckedReasons)
	if !cfill.Partial || len(cfill.Errors) != 1 || len(cfill.Replayed) == 0 {
		t.Errorf("softprohub gaps fill with the API down: %+v, want partial, one error, a refold", cfill)
	}
	restored("softprohub gaps fill")
	e.matchesSimulator(s, id, 30*time.Second)
}

// apiDownReport is what gaps and gaps fill report, over HTTP and on the
// command line, of the fields the test reads.
type apiDownReport struct {
	Gaps              []projections.Gap `json:"gaps"`
	NotChecked        []string          `json:"notChecked"`
	NotCheckedReasons map[string]string `json:"notCheckedReasons"`
	Errors            []string          `json:"errors"`
	Replayed          []json.RawMessage `json:"replayed"`
	Partial           bool              `json:"partial"`
}

// callOK is call as the admin, checking the answer against the OpenAPI
// document only when it is a 200, so that another status fails the test
// with the rest of its checks.
func (e *Env) callOK(method, path string) (int, []byte) {
	e.t.Helper()
	status, raw := e.do(method, path, e.Token, nil)
	if status == http.StatusOK {
		e.checkContract(method, path, status, raw)
	}
	return status, raw
}

package tests

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRebuildBodyForAPointInTimeBuildNeverStartsALiveRebuild: schema or
// replace without asOf, any of the three named empty, false or null, and
// an asOf at the zero time (which reads as no asOf), are refused with 400
// rather than starting a full rebuild and swap of the live read models.
func TestRebuildBodyForAPointInTimeBuildNeverStartsALiveRebuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := "/api/v1/integrations/softpro/projections/rebuild"
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"schema": "my_copy"}, "asOf"},
		{map[string]any{"schema": "my_copy", "replace": true}, "asOf"},
		{map[string]any{"replace": true}, "asOf"},
		{map[string]any{"asOf": "", "schema": "my_copy"}, "asOf"},
		{map[string]any{"asOf": "0001-01-01T00:00:00Z", "schema": "my_copy"}, "asOf"},
		{map[string]any{"asOf": "0001-01-01T01:00:00+01:00", "schema": "my_copy"}, "asOf"},
		{map[string]any{"asOf": "2024-01-01T00:00:00Z"}, "schema"},
		{map[string]any{"asOf": "yesterday", "schema": "my_copy"}, "asOf"},
		// Named but empty, false or null (a script's unset variable): still
		// a request for a copy.
		{map[string]any{"asOf": ""}, "asOf"},
		{map[string]any{"schema": ""}, "asOf"},
		{map[string]any{"replace": false}, "asOf"},
		{map[string]any{"asOf": nil, "schema": nil}, "asOf"},
		{map[string]any{"projection": "all", "asOf": nil}, "asOf"},
		{map[string]any{"asOf": "2024-01-01T00:00:00Z", "schema": ""}, "schema"},
		{map[string]any{"asOf": "2024-01-01T00:00:00Z", "schema": nil}, "schema"},
	} {
		status, raw := e.do(http.MethodPost, path, e.Token, c.body)
		code, msg := errCode(raw)
		if status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, c.want) {
			t.Errorf("rebuild %v: %d %s, want 400 naming %s", c.body, status, raw, c.want)
			continue
		}
		e.checkContract(http.MethodPost, path, status, raw)
	}
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("rebuild runs after refused requests: %s", got)
	}
}

// TestPointInTimeBuildOfTheFutureRefused: an asOf after now would build the
// log up to now and label it as the state at that time; it is refused with
// 400 and creates nothing, as a replay's from in the future is.
func TestPointInTimeBuildOfTheFutureRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	schema := "asof_future_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, schema) })
	for _, asOf := range []string{time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "2999-01-01T00:00:00Z"} {
		statuses, raws := e.rebuildStarts(map[string]any{"asOf": asOf, "schema": schema})
		if code, msg := errCode(raws[0]); statuses[0] != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "future") {
			t.Errorf("as-of %s: %d %s, want 400 saying it is in the future", asOf, statuses[0], raws[0])
		}
	}
	db := e.db()
	if got := queryString(t, db, `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("rebuild runs after refused requests: %s", got)
	}
	if got := queryString(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema); got != "0" {
		t.Fatalf("a refused build created its schema")
	}
}

// TestRebuildBodyTakesTheProjection: projection takes the values of the
// CLI's --projection, all or one projection's name, each rebuilding every
// read model (with asOf, into the copy); another name is 400.
func TestRebuildBodyTakesTheProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	statuses, raws := e.rebuildStarts(map[string]any{"projection": "invoices"})
	if code, msg := errCode(raws[0]); statuses[0] != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "invoices") ||
		!strings.Contains(msg, "transactions") {
		t.Fatalf("unknown projection: %d %s, want 400 naming it and the known ones", statuses[0], raws[0])
	}
	if got := queryString(t, e.db(), `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("rebuild runs after a refused request: %s", got)
	}
	for _, p := range []string{"all", "contacts"} {
		// The lock of the run before is given back once it has dropped
		// the tables it replaced, a moment after it is done.
		eventually(t, 30*time.Second, func() string {
			statuses, raws = e.rebuildStarts(map[string]any{"projection": p})
			if statuses[0] != http.StatusAccepted {
				return fmt.Sprintf("rebuild of projection %s: %d %s, want 202", p, statuses[0], raws[0])
			}
			return ""
		})
		e.waitRun(raws[0])
	}
	schema := "asof_proj_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, schema) })
	statuses, raws = e.rebuildStarts(map[string]any{"projection": "all", "asOf": time.Now().UTC().Format(time.RFC3339), "schema": schema})
	if statuses[0] != http.StatusAccepted {
		t.Fatalf("as-of with projection all: %d %s, want 202", statuses[0], raws[0])
	}
	e.waitRun(raws[0])
	if got := queryString(t, e.db(), `SELECT string_agg(kind, ',' ORDER BY id) FROM rebuild_runs`); got != "rebuild,rebuild,as-of" {
		t.Fatalf("runs: %s, want two rebuilds and a copy", got)
	}
}

// rebuildStarts fires one POST …/projections/rebuild per body, all at
// once, and returns their statuses and answers in that order.
func (e *Env) rebuildStarts(bodies ...map[string]any) ([]int, [][]byte) {
	e.t.Helper()
	path := "/api/v1/integrations/softpro/projections/rebuild"
	statuses, raws := make([]int, len(bodies)), make([][]byte, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() { statuses[i], raws[i] = e.do(http.MethodPost, path, e.Token, b) })
	}
	wg.Wait()
	for i := range bodies {
		e.checkContract(http.MethodPost, path, statuses[i], raws[i])
	}
	return statuses, raws
}

// waitRun waits until the rebuild run of the 202 answer raw is done.
func (e *Env) waitRun(raw []byte) {
	e.t.Helper()
	var d struct {
		RunID int64 `json:"runId"`
	}
	apiData(e.t, raw, &d)
	if d.RunID == 0 {
		e.t.Fatalf("202 without a runId: %s", raw)
	}
	db := e.db()
	eventually(e.t, time.Minute, func() string {
		got := queryString(e.t, db, `SELECT state, coalesce(error, '') FROM rebuild_runs WHERE id = $1`, d.RunID)
		switch {
		case got == "done ":
			return ""
		case strings.HasPrefix(got, "failed") || strings.HasPrefix(got, "cancelled"):
			e.t.Fatalf("run %d: %s", d.RunID, got)
		}
		return fmt.Sprintf("run %d: %q", d.RunID, got)
	})
}

// TestConcurrentRebuildsOneStarts: of rebuilds asked for at once, exactly
// one is started (202) and the others are told 409 at once, rather than
// several being accepted and all but one failing in the background.
func TestConcurrentRebuildsOneStarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	statuses, raws := e.rebuildStarts(nil, nil, nil, nil, nil, nil)
	slices.Sort(statuses)
	if want := []int{202, 409, 409, 409, 409, 409}; !slices.Equal(statuses, want) {
		t.Fatalf("six rebuilds at once: %v, want %v", statuses, want)
	}
	for _, raw := range raws {
		if code, _ := errCode(raw); code == "" {
			e.waitRun(raw)
		} else if code != "CONFLICT" {
			t.Fatalf("refused rebuild: %s", raw)
		}
	}
	if got := queryString(t, e.db(), `SELECT string_agg(state, ',') FROM rebuild_runs`); got != "done" {
		t.Fatalf("rebuild runs: %s, want the one done", got)
	}
	// The lock is given back: once the run has also dropped the tables it
	// replaced, the next one starts.
	var next []byte
	eventually(t, 30*time.Second, func() string {
		statuses, raws = e.rebuildStarts(nil)
		if statuses[0] != http.StatusAccepted {
			return fmt.Sprintf("rebuild after the last finished: %d %s", statuses[0], raws[0])
		}
		next = raws[0]
		return ""
	})
	e.waitRun(next)
}

// TestPointInTimeBuildTargetRefusedAtOnce: a point-in-time build into a
// schema it may not write into is refused in the answer, not accepted and
// failed in the background: 400 for the live schema, a system schema, a
// rebuild's own and a name analysts could not put in search_path; 409 for
// a schema that exists, unless replace is given.
func TestPointInTimeBuildTargetRefusedAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	live := queryString(t, db, `SELECT current_schema()`)
	target := "asof_" + e.ns
	t.Cleanup(func() { dropSchema(sharedServices(t).databaseURL, target) })
	asOf := time.Now().UTC().Format(time.RFC3339)

	for _, schema := range []string{live, live + "_rebuild_7", "pg_copy", "information_schema", "My_Copy", "my-copy", "7copy",
		"my copy", strings.Repeat("a", 64)} {
		statuses, raws := e.rebuildStarts(map[string]any{"asOf": asOf, "schema": schema})
		if code, msg := errCode(raws[0]); statuses[0] != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, "schema") {
			t.Errorf("as-of into %q: %d %s, want 400", schema, statuses[0], raws[0])
		}
	}
	if got := queryString(t, db, `SELECT count(*) FROM rebuild_runs`); got != "0" {
		t.Fatalf("runs recorded for refused builds: %s", got)
	}

	// Two builds into the same new schema at once: one creates it, the
	// other finds it there.
	body := map[string]any{"asOf": asOf, "schema": target}
	statuses, raws := e.rebuildStarts(body, body)
	slices.Sort(statuses)
	if !slices.Equal(statuses, []int{http.StatusAccepted, http.StatusConflict}) {
		t.Fatalf("two builds into %s at once: %v %s %s, want one 202 and one 409", target, statuses, raws[0], raws[1])
	}
	for _, raw := range raws {
		if code, _ := errCode(raw); code == "" {
			e.waitRun(raw)
		}
	}
	statuses, raws = e.rebuildStarts(body)
	if code, _ := errCode(raws[0]); statuses[0] != http.StatusConflict || code != "CONFLICT" {
		t.Fatalf("as-of into the existing %s: %d %s, want 409", target, statuses[0], raws[0])
	}
	statuses, raws = e.rebuildStarts(map[string]any{"asOf": asOf, "schema": target, "replace": true})
	if statuses[0] != http.StatusAccepted {
		t.Fatalf("as-of into the existing %s with replace: %d %s, want 202", target, statuses[0], raws[0])
	}
	e.waitRun(raws[0])
}

package tests

import (
	"net/http"
	"strings"
	"testing"
)

// TestRebuildBodyForAPointInTimeBuildNeverStartsALiveRebuild: schema or
// replace without asOf, and an asOf at the zero time (which reads as no
// asOf), are refused with 400 rather than starting a full rebuild and
// swap of the live read models.
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

package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// An organizationId with a control character (C0, DEL or C1) is refused
// on every path that sets one: POST and PATCH answer 400 naming the rule,
// `integrations create` and `update` exit 1. A row stored before the rule
// (written here straight to the table) is listed by `integrations list`
// on its own line, its organizationId quoted and escaped, so that it
// cannot pass for another line; `show` prints it escaped in JSON.
func TestOrganizationIDControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const rule = "organizationId must not contain control characters"
	bad := []string{"evil\nfake\torg=x", "cr\rlf", "tab\t", "del\x7f", "c1\u0085", "csi\u009b2J", "esc\x1b[2J"}

	for i, org := range bad {
		id := e.id("ctl-" + string(rune('a'+i)))
		e.cliRefused(rule, "integrations", "create", "--org", org, "--id", id)
		status, raw := e.call(http.MethodPost, "/api/v1/integrations/softpro", e.Token,
			map[string]any{"id": id, "organizationId": org, "webhookSecret": "s3cret-value"})
		if code, msg := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, rule) {
			t.Errorf("POST with organizationId %q: %d %s, want 400 BAD_REQUEST saying %q", org, status, raw, rule)
		}
		if status, _ := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil); status != http.StatusNotFound {
			t.Errorf("POST with organizationId %q stored the integration (GET: %d)", org, status)
		}
	}

	id, _ := e.integration("ctl-ok", map[string]any{"organizationId": "org ok é"})
	for _, org := range bad {
		status, raw := e.call(http.MethodPatch, "/api/v1/integrations/softpro/"+id, e.Token, map[string]any{"organizationId": org})
		if code, msg := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(msg, rule) {
			t.Errorf("PATCH organizationId %q: %d %s, want 400 BAD_REQUEST saying %q", org, status, raw, rule)
		}
		e.cliRefused(rule, "integrations", "update", id, "--org", org)
	}
	if got := e.integrationNow(id).OrganizationID; got != "org ok é" {
		t.Fatalf("after refused changes the organizationId is %q", got)
	}

	// A row stored before the rule.
	old, _ := e.integration("ctl-old", map[string]any{"organizationId": "org"})
	spoof := "evil\nfake\torg=x\x1b[2J\u009b"
	if _, err := e.db().Exec(context.Background(), `UPDATE softpro_integrations SET organization_id = $2 WHERE id = $1`, old, spoof); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := e.cli("integrations", "list")
	if err != nil {
		t.Fatalf("integrations list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := old + "\torg=" + `"evil\nfake\torg=x\x1b[2J\u009b"` + "\tactive=true\t"
	var found int
	for _, l := range lines {
		if strings.HasPrefix(l, old+"\t") {
			found++
			if !strings.HasPrefix(l, want) {
				t.Errorf("integrations list printed %q for the old row, want it to start %q", l, want)
			}
		}
		if strings.ContainsAny(l, "\r\x1b\x7f\u0085\u009b") || strings.HasPrefix(l, "fake") || strings.Count(l, "\t") != 5 {
			t.Errorf("integrations list printed a line of other shape or with a control character: %q", l)
		}
	}
	if found != 1 || len(lines) != 2 {
		t.Errorf("integrations list printed %d lines, %d of them for the old row, want 2 and 1:\n%s", len(lines), found, out)
	}
	shown, _, err := e.cli("integrations", "show", old)
	if err != nil || strings.ContainsAny(shown, "\x1b\x7f\u0085\u009b") || !strings.Contains(shown, `"organizationId": "evil\nfake\torg=x\u001b[2J\u009b"`) {
		t.Errorf("integrations show: %v\n%q", err, shown)
	}
	if v := cliJSON[integrationView](e, "integrations", "show", old); v.OrganizationID != spoof {
		t.Errorf("show decodes to organizationId %q, want %q", v.OrganizationID, spoof)
	}

	// Its organizationId is checked with any change, so the change that
	// fixes it is the one that goes through.
	if status, raw := e.call(http.MethodPatch, "/api/v1/integrations/softpro/"+old, e.Token, map[string]any{"active": false}); status != http.StatusBadRequest || !strings.Contains(string(raw), rule) {
		t.Errorf("PATCH of another field of the old row: %d %s, want 400 saying %q", status, raw, rule)
	}
	if status, raw := e.call(http.MethodPatch, "/api/v1/integrations/softpro/"+old, e.Token, map[string]any{"organizationId": "evil fake", "active": false}); status != http.StatusOK {
		t.Errorf("PATCH that fixes the old row: %d %s", status, raw)
	}
}

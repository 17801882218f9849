package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/roisystems/softprohub/handlers/schedule"
)

// TestCLIIntegrationsUpdate: `integrations update` changes the settings its
// flags name, keeps the others, is checked (and stores sync types) as PATCH
// does, and the running service's scheduler follows it.
func TestCLIIntegrationsUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("cli-update", nil)
	before := e.integrationNow(id)

	got := cliJSON[integrationView](e, "integrations", "update", id, "--sync-enabled", "--sync-frequency", "120",
		"--sync-types", "contacts,tasks", "--rate-limit", "300")
	if !got.SyncEnabled || got.SyncFrequency != 120 || !slices.Equal(got.SyncTypes, []string{"contacts", "tasks"}) ||
		got.RateLimit != 300 || got.OrganizationID != before.OrganizationID || !got.WebhookEnabled || !got.Active {
		t.Fatalf("update printed %+v", got)
	}
	e.waitSchedule(id, "the two-hourly schedule", func(s schedule.IntegrationStatus) bool {
		return s.Scheduled && s.CronExpression == "0 */2 * * *" && s.RateLimit == 300 &&
			slices.Equal(s.SyncTypes, []string{"contacts", "tasks"})
	})

	got = cliJSON[integrationView](e, "integrations", "update", id, "--sync-enabled=false", "--webhook-enabled=false")
	if got.SyncEnabled || got.WebhookEnabled || got.SyncFrequency != 120 {
		t.Fatalf("second update printed %+v", got)
	}
	if now := e.integrationNow(id); now.SyncEnabled || now.WebhookEnabled || now.RateLimit != 300 {
		t.Fatalf("stored after the second update: %+v", now)
	}

	// A type named twice is stored once, as PATCH stores it.
	got = cliJSON[integrationView](e, "integrations", "update", id, "--sync-types", "tasks,contacts,tasks")
	if want := []string{"tasks", "contacts"}; !slices.Equal(got.SyncTypes, want) || !slices.Equal(e.integrationNow(id).SyncTypes, want) {
		t.Fatalf("--sync-types tasks,contacts,tasks printed %v, stored %v, want %v", got.SyncTypes, e.integrationNow(id).SyncTypes, want)
	}

	e.cliRefused("syncFrequency must be at least", "integrations", "update", id, "--sync-frequency", "1")
	e.cliRefused(`unknown type "bogus"`, "integrations", "update", id, "--sync-types", "bogus")
	e.cliRefused("not found", "integrations", "update", e.id("missing"), "--rate-limit", "5")
	e.cliRefused("name at least one setting", "integrations", "update", id)
	if now := e.integrationNow(id); now.SyncFrequency != 120 {
		t.Fatalf("a refused update changed the integration: %+v", now)
	}
}

// `integrations create` is checked as POST is: the id rules (no reserved
// route name, no spaces or slashes), limits given as given, and the
// organization id's length.
func TestCLIIntegrationsCreateIsCheckedAsTheAPIIs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := "org-" + e.ns
	e.cliRefused("id must not be projections, sync, webhooks", "integrations", "create", "--org", org, "--id", "webhooks")
	e.cliRefused("id must be 1-128 characters", "integrations", "create", "--org", org, "--id", e.id("a b/c"))
	e.cliRefused("rateLimit must be positive", "integrations", "create", "--org", org, "--rate-limit", "-5")
	e.cliRefused("ingestRateLimit must be positive", "integrations", "create", "--org", org, "--ingest-rate-limit", "0")
	e.cliRefused("organizationId must be at most 1000 bytes", "integrations", "create", "--org", strings.Repeat("o", 1001))
	status, raw := e.call(http.MethodPost, "/api/v1/integrations/softpro", e.Token, map[string]any{"organizationId": strings.Repeat("o", 4000)})
	if code, _ := errCode(raw); status != http.StatusBadRequest || code != "BAD_REQUEST" || !strings.Contains(string(raw), "organizationId must be at most") {
		t.Fatalf("POST with a 4,000-byte organizationId: %d %s, want 400 naming it", status, raw)
	}
	got := cliJSON[integrationView](e, "integrations", "create", "--org", org, "--id", e.id("fine"), "--rate-limit", "7")
	if got.RateLimit != 7 {
		t.Fatalf("created %+v, want rateLimit 7", got)
	}
}

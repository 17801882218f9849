package tests

import (
	"slices"
	"testing"

	"github.com/roisystems/softprohub/handlers/schedule"
)

// TestCLIIntegrationsUpdate: `integrations update` changes the settings its
// flags name, keeps the others, is checked as PATCH is, and the running
// service's scheduler follows it.
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

	e.cliRefused("syncFrequency must be at least", "integrations", "update", id, "--sync-frequency", "1")
	e.cliRefused(`unknown type "bogus"`, "integrations", "update", id, "--sync-types", "bogus")
	e.cliRefused("not found", "integrations", "update", e.id("missing"), "--rate-limit", "5")
	e.cliRefused("name at least one setting", "integrations", "update", id)
	if now := e.integrationNow(id); now.SyncFrequency != 120 {
		t.Fatalf("a refused update changed the integration: %+v", now)
	}
}

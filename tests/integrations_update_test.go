package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/schedule"
)

// scheduleOf returns id's line of the scheduler status.
func (e *Env) scheduleOf(id string) schedule.IntegrationStatus {
	e.t.Helper()
	var st struct{ Integrations []schedule.IntegrationStatus }
	status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/sync/status", e.Token, nil)
	if status != http.StatusOK {
		e.t.Fatalf("sync status: %d %s", status, raw)
	}
	apiData(e.t, raw, &st)
	for _, in := range st.Integrations {
		if in.IntegrationID == id {
			return in
		}
	}
	e.t.Fatalf("sync status lacks %s: %s", id, raw)
	return schedule.IntegrationStatus{}
}

// waitSchedule polls the scheduler status until ok holds for id's line.
func (e *Env) waitSchedule(id string, what string, ok func(schedule.IntegrationStatus) bool) schedule.IntegrationStatus {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.scheduleOf(id)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sync status of %s never showed %s: %+v", id, what, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// integrationView is the integration as the management API shows it.
type integrationView struct {
	ID              string
	OrganizationID  string
	Active          bool
	WebhookEnabled  bool
	SyncEnabled     bool
	SyncFrequency   int
	SyncTypes       []string
	RateLimit       int
	IngestRateLimit int
	Secrets         []struct{ KeyID string }
	UpdatedAt       time.Time
}

func (e *Env) patchIntegration(id string, body map[string]any) (int, integrationView, []byte) {
	e.t.Helper()
	status, raw := e.call(http.MethodPatch, "/api/v1/integrations/softpro/"+id, e.Token, body)
	var out struct{ Integration integrationView }
	if status == http.StatusOK {
		apiData(e.t, raw, &out)
	}
	return status, out.Integration, raw
}

func (e *Env) integrationNow(id string) integrationView {
	e.t.Helper()
	status, raw := e.call(http.MethodGet, "/api/v1/integrations/softpro/"+id, e.Token, nil)
	if status != http.StatusOK {
		e.t.Fatalf("get %s: %d %s", id, status, raw)
	}
	var out struct{ Integration integrationView }
	apiData(e.t, raw, &out)
	return out.Integration
}

// TestUpdateIntegrationSettings: PATCH changes the settings it names and
// keeps the others; the scheduler, the SoftPro API quota and the webhook
// rate limit follow at once; input the create route refuses is refused here
// too, leaving the integration as it was.
func TestUpdateIntegrationSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.syncIntegration("patch", nil)
	before := e.integrationNow(id)
	if e.scheduleOf(id).Scheduled {
		t.Fatalf("sync is off at creation, yet %s is scheduled", id)
	}

	status, got, raw := e.patchIntegration(id, map[string]any{
		"syncEnabled": true, "syncFrequency": 60, "syncTypes": []string{"transactions"}, "rateLimit": 600,
	})
	if status != http.StatusOK {
		t.Fatalf("patch: %d %s", status, raw)
	}
	if !got.SyncEnabled || got.SyncFrequency != 60 || !slices.Equal(got.SyncTypes, []string{"transactions"}) || got.RateLimit != 600 {
		t.Errorf("patched integration %+v, want sync on every 60 min, transactions only, rateLimit 600", got)
	}
	if got.OrganizationID != before.OrganizationID || got.Active != before.Active || got.WebhookEnabled != before.WebhookEnabled ||
		got.IngestRateLimit != before.IngestRateLimit || len(got.Secrets) != len(before.Secrets) || !got.UpdatedAt.After(before.UpdatedAt) {
		t.Errorf("fields not named changed, or updatedAt did not: before %+v, after %+v", before, got)
	}
	e.waitSchedule(id, "the hourly schedule and the new quota", func(s schedule.IntegrationStatus) bool {
		// The bucket holds a tenth of the limit.
		return s.Scheduled && s.CronExpression == "0 * * * *" && slices.Equal(s.SyncTypes, []string{"transactions"}) &&
			s.RateLimit == 600 && s.QuotaRemaining == 60
	})

	for msg, req := range map[string]map[string]any{
		"syncFrequency must be at least":                                  {"syncFrequency": 1},
		`syncTypes: unknown type "bogus"`:                                 {"syncTypes": []string{"bogus"}},
		"rateLimit must be positive":                                      {"rateLimit": 0},
		"rateLimit must be at most":                                       {"rateLimit": 3_000_000_000},
		"organizationId is required":                                      {"organizationId": ""},
		"retryConfig.maxRetries must be":                                  {"webhookRetryConfig": map[string]any{"maxRetries": 99}},
		"change through PUT /api/v1/integrations/softpro/webhooks/config": {"webhookSecret": "s3cret-value"},
		"which rotates the secret":                                        {"signatureScheme": "standard-webhooks"},
		`unknown field "id"`:                                              {"id": "other"},
		"ingestRateLimit must be positive":                                {"ingestRateLimit": -1},
	} {
		status, _, raw := e.patchIntegration(id, req)
		if _, got := errCode(raw); status != http.StatusBadRequest || !strings.Contains(got, msg) {
			t.Errorf("patch %v: %d %s, want 400 naming %q", req, status, raw, msg)
		}
	}
	if now := e.integrationNow(id); now.SyncFrequency != 60 || now.RateLimit != 600 || now.OrganizationID != before.OrganizationID {
		t.Errorf("a refused patch changed the integration: %+v", now)
	}

	// An empty patch changes nothing and answers the integration.
	if status, got, raw := e.patchIntegration(id, map[string]any{}); status != http.StatusOK || got.SyncFrequency != 60 {
		t.Errorf("empty patch: %d %s", status, raw)
	}

	// The webhook gate reads the new limit: one webhook a minute.
	if status, _, raw := e.patchIntegration(id, map[string]any{"ingestRateLimit": 1, "webhookRetryConfig": map[string]any{"maxRetries": 3}}); status != http.StatusOK {
		t.Fatalf("patch ingestRateLimit: %d %s", status, raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; ; n++ {
		r := e.send(signedWebhook(id, secret, payload("evt_rl_"+randomID(6), domain.TaskCreated, `{}`)))
		if r.Status == http.StatusTooManyRequests && r.code() == "RATE_LIMITED" {
			break
		}
		if r.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("webhook %d after ingestRateLimit 1: %d %s, want 200 until the limit, then 429", n, r.Status, r.Raw)
		}
	}

	status, got, raw = e.patchIntegration(id, map[string]any{"syncEnabled": false})
	if status != http.StatusOK || got.SyncEnabled {
		t.Fatalf("turn sync off: %d %s", status, raw)
	}
	e.waitSchedule(id, "no schedule", func(s schedule.IntegrationStatus) bool { return !s.Scheduled })

	if status, _, raw := e.patchIntegration(e.id("missing"), map[string]any{"rateLimit": 5}); status != http.StatusNotFound {
		t.Errorf("patch of an unknown integration: %d %s, want 404", status, raw)
	}
	if status, raw := e.call(http.MethodPatch, "/api/v1/integrations/softpro/"+id, e.analystToken(), map[string]any{"rateLimit": 5}); status != http.StatusForbidden {
		t.Errorf("patch as analyst: %d %s, want 403", status, raw)
	}
	if status, raw := e.call(http.MethodPatch, "/api/v1/integrations/softpro/"+id, "", map[string]any{"rateLimit": 5}); status != http.StatusUnauthorized {
		t.Errorf("patch without a token: %d %s, want 401", status, raw)
	}
}

// TestSyncTypesAreStoredOnce: syncTypes naming a type more than once, in
// a creation or a PATCH, is stored (and shown) with each type once, in the
// order first named; the database holds what the answer shows.
func TestSyncTypesAreStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("dup", map[string]any{"syncTypes": []string{"contacts", "tasks", "contacts", "tasks"}})
	stored := func(want ...string) {
		t.Helper()
		if got := e.integrationNow(id).SyncTypes; !slices.Equal(got, want) {
			t.Errorf("GET shows syncTypes %v, want %v", got, want)
		}
		if got := queryString(t, e.db(), `SELECT array_to_string(sync_types, ',') FROM softpro_integrations WHERE id = $1`, id); got != strings.Join(want, ",") {
			t.Errorf("stored sync_types %s, want %v", got, want)
		}
	}
	stored("contacts", "tasks")

	status, got, raw := e.patchIntegration(id, map[string]any{"syncTypes": []string{"contacts", "contacts"}})
	if status != http.StatusOK || !slices.Equal(got.SyncTypes, []string{"contacts"}) {
		t.Fatalf("patch syncTypes [contacts contacts]: %d %s, want 200 with [contacts]", status, raw)
	}
	stored("contacts")

	status, got, raw = e.patchIntegration(id, map[string]any{"syncTypes": []string{"documents", "transactions", "documents", "contacts", "transactions"}})
	if status != http.StatusOK || !slices.Equal(got.SyncTypes, []string{"documents", "transactions", "contacts"}) {
		t.Fatalf("patch: %d %s, want 200 with [documents transactions contacts]", status, raw)
	}
	stored("documents", "transactions", "contacts")
}

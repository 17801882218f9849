package domain

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSettingsChangeKeepsWhatItDoesNotName(t *testing.T) {
	in := Integration{ID: "a", OrganizationID: "org", Active: true, SyncFrequency: 15,
		SyncTypes: []string{SyncTransactions, SyncContacts}, RateLimit: 100, IngestRateLimit: 600}
	freq, off := 60, false
	got := in
	SettingsChange{SyncFrequency: &freq, WebhookEnabled: &off}.Apply(&got)
	want := in
	want.SyncFrequency, want.WebhookEnabled = 60, false
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Apply = %+v, want %+v", got, want)
	}
	types := []string{SyncTasks}
	SettingsChange{SyncTypes: types}.Apply(&got)
	types[0] = SyncDocuments // the integration keeps its own copy
	if !slices.Equal(got.SyncTypes, []string{SyncTasks}) {
		t.Fatalf("SyncTypes = %v, want [tasks]", got.SyncTypes)
	}
	SettingsChange{SyncTypes: []string{}}.Apply(&got)
	if got.SyncTypes == nil || len(got.SyncTypes) != 0 {
		t.Fatalf("an empty list must clear the types: %v", got.SyncTypes)
	}
}

// TestSettingsChangeKeepsEachSyncTypeOnce: a type named twice is stored
// once, the types in the order they were first named.
func TestSettingsChangeKeepsEachSyncTypeOnce(t *testing.T) {
	var got Integration
	SettingsChange{SyncTypes: []string{SyncTasks, SyncContacts, SyncTasks, SyncContacts, SyncTransactions}}.Apply(&got)
	if want := []string{SyncTasks, SyncContacts, SyncTransactions}; !slices.Equal(got.SyncTypes, want) {
		t.Fatalf("SyncTypes = %v, want %v", got.SyncTypes, want)
	}
}

// TestValidateSettingsOrganizationID: an organizationId holds no control
// character (C0, DEL or C1), which would let it pass for more lines or
// columns where it is listed, and at most MaxOrganizationIDBytes bytes;
// any other text, spaces and non-ASCII letters included, is accepted.
func TestValidateSettingsOrganizationID(t *testing.T) {
	valid := Integration{ID: "a", OrganizationID: "org", SignatureScheme: SchemeSoftPro, SyncFrequency: 15,
		RateLimit: 100, IngestRateLimit: 600}
	for _, org := range []string{"org", "Acme Title & Escrow", "société générale", "org=x", strings.Repeat("é", MaxOrganizationIDBytes/2)} {
		in := valid
		in.OrganizationID = org
		if err := ValidateSettings(in, 5); err != nil {
			t.Errorf("organizationId %q: %v, want it accepted", org, err)
		}
	}
	for _, org := range []string{"evil\nfake\torg=x", "a\rb", "tab\there", "nul\x00", "esc\x1b[2J", "del\x7f", "c1\u0085", "csi\u009b31m", "\u0080", "\u009f"} {
		in := valid
		in.OrganizationID = org
		err := ValidateSettings(in, 5)
		var v *ValidationError
		if !errors.As(err, &v) || len(v.Problems) != 1 || !strings.Contains(v.Problems[0], "organizationId must not contain control characters") {
			t.Errorf("organizationId %q: %v, want it refused for its control characters", org, err)
		}
	}
	in := valid
	in.OrganizationID = strings.Repeat("x", MaxOrganizationIDBytes+1)
	if err := ValidateSettings(in, 5); err == nil || !strings.Contains(err.Error(), "at most 1000 bytes") {
		t.Errorf("organizationId of %d bytes: %v, want it refused", MaxOrganizationIDBytes+1, err)
	}
}

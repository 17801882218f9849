package domain

import (
	"reflect"
	"slices"
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

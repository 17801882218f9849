package domain

import (
	"errors"
	"strings"
	"testing"
)

// An event of a webhook type without a data object is unprojectable: it
// creates no entity keyed by the event id out of the webhook's own id, type
// and timestamp (it did). A record pulled by a sync may be bare, also when
// a manual retry appended it again; the rule goes by the type.
func TestChangeOfNeedsADataObjectButOfSyncRecords(t *testing.T) {
	t.Parallel()
	retried := env(TransactionSynced, "sync_1", t0, `{"id":"txn_9","status":"open"}`)
	retried.Source, retried.Attempt = SourceRetry, 1
	noData := `{"id":"e_nodata","type":"transaction.created","timestamp":"2024-01-15T10:30:00Z"}`
	retriedWebhook := env(TransactionCreated, "e_nodata", t0, noData)
	retriedWebhook.Source, retriedWebhook.Attempt = SourceRetry, 1
	tests := []struct {
		name    string
		env     Envelope
		wantErr string
		wantID  string
	}{
		{name: "webhook without data", env: env(TransactionCreated, "e_nodata", t0, noData),
			wantErr: "unprojectable event: transaction.created e_nodata: payload has no data object"},
		{name: "webhook without data, retried", env: retriedWebhook, wantErr: "payload has no data object"},
		{name: "delete without data", env: env(ContactDeleted, "e2", t0, `{"id":"con_1"}`), wantErr: "payload has no data object"},
		{name: "closing without data", env: env(ClosingCompleted, "e3", t0, `{"id":"e3","transaction_id":"txn_1"}`), wantErr: "payload has no data object"},
		{name: "webhook with data", env: env(TransactionCreated, "e4", t0, `{"id":"e4","data":{"id":"txn_4"}}`), wantID: "txn_4"},
		{name: "bare sync record", env: env(TaskSynced, "sync_2", t0, `{"id":"tsk_1","status":"open"}`), wantID: "tsk_1"},
		{name: "sync record in the webhook shape", env: env(DocumentSynced, "sync_3", t0, `{"id":"sync_3","data":{"id":"doc_1"}}`), wantID: "doc_1"},
		{name: "bare sync record, retried", env: retried, wantID: "txn_9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkChangeOf(t, tt.env, tt.wantID, tt.wantErr)
		})
	}
}

// checkChangeOf fails the test unless ChangeOf(e) is a change of entity
// wantID or, when wantErr is set, an unprojectable error saying wantErr.
func checkChangeOf(t *testing.T, e Envelope, wantID, wantErr string) {
	t.Helper()
	c, ok, err := ChangeOf(e)
	if wantErr != "" {
		if !errors.Is(err, ErrUnprojectable) || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want ErrUnprojectable saying %q", err, wantErr)
		}
		return
	}
	if err != nil || !ok || c.Key.ID != wantID {
		t.Fatalf("ok %v, err %v, key %+v; want entity %s", ok, err, c.Key, wantID)
	}
}

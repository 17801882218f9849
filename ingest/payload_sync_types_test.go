package ingest

import (
	"fmt"
	"testing"
	"time"
)

// A webhook of a type only syncs append (transaction.synced, …) is refused
// with 400 INVALID_PAYLOAD, appending nothing: it was accepted onto
// softpro.sync.v1, projected as an API record and left out of the webhook
// figures. An unknown type ending in .synced is kept like any unknown type.
func TestReceiverRefusesSyncRecordTypes(t *testing.T) {
	t.Parallel()
	synced := func(typ string) string {
		return fmt.Sprintf(`{"id":"typ4","type":%q,"timestamp":%q,"data":{"id":"t_synced_via_webhook","status":"x"}}`, typ, now.Format(time.RFC3339))
	}
	for _, typ := range []string{"transaction.synced", "contact.synced", "document.synced", "task.synced"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			log, err := receiveAlone(t, synced(typ))
			refusedAsInvalid(t, log, err, "type "+typ+" is reserved for records pulled by syncs")
		})
	}
	log, err := receiveAlone(t, synced("invoice.synced"))
	if err != nil || len(log.envs) != 1 {
		t.Fatalf("invoice.synced: err = %v, appended %d; want it appended", err, len(log.envs))
	}
}

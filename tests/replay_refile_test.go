package tests

import (
	"slices"
	"testing"

	"github.com/roisystems/softprohub/projections"
)

// Audit rows edited behind the system's back so that they count under
// another event type or hour of receipt: validate names each, with what
// the log says, and gaps fill files them back, leaving the audit and the
// read models as they were.
func TestFillRefilesAuditRowsEditedBehindTheBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, _ := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	const audit = `SELECT event_id, event_type, received_at FROM webhook_events WHERE integration_id=$1 ORDER BY event_id`
	wantAudit := queryString(t, db, audit, id)
	retyped := queryString(t, db, `SELECT min(event_id) FROM webhook_events WHERE integration_id=$1 AND event_type='task.created'`, id)
	moved := queryString(t, db, `SELECT min(event_id) FROM webhook_events WHERE integration_id=$1 AND event_type='contact.updated'`, id)
	tamper(t, db, id,
		`UPDATE webhook_events SET event_type='document.uploaded' WHERE integration_id=$1 AND event_id='`+retyped+`'`,
		`UPDATE webhook_events SET received_at = received_at - interval '3 hours' WHERE integration_id=$1 AND event_id='`+moved+`'`)

	rep := e.consistency(id)
	var misfiled []string
	for _, is := range rep.Issues {
		if is.Kind == projections.IssueAuditMisfiled {
			misfiled = append(misfiled, is.EventID)
		}
	}
	slices.Sort(misfiled)
	if wantIDs := slices.Sorted(slices.Values([]string{retyped, moved})); !slices.Equal(misfiled, wantIDs) {
		t.Fatalf("misfiled audit rows named %v, want %v; issues %+v", misfiled, wantIDs, rep.Issues)
	}
	if rep.Score == 100 {
		t.Fatalf("score 100 with two audit rows misfiled")
	}
	g := e.gaps(id)
	if len(g) != 1 || g[0].Kind != projections.GapReadModel {
		t.Fatalf("gaps %+v, want one read-model gap", g)
	}
	fill := e.fill(id)
	if len(fill.Errors) != 0 || fill.AuditRefiled != 2 {
		t.Fatalf("fill %+v, want two audit rows filed back", fill)
	}
	if got := queryString(t, db, audit, id); got != wantAudit {
		t.Fatalf("audit after fill:\n got %s\nwant %s", got, wantAudit)
	}
	e.restoredExactly(db, id, want)
}

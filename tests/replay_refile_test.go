package tests

import (
	"slices"
	"testing"

	"github.com/roisystems/softprohub/projections"
)

// Audit rows edited behind the system's back so that they count under
// another event type or hour of receipt, or only moved within their hour
// (no count changes): validate names each, with what the log says, and
// gaps fill files them back, leaving the audit and the read models as they
// were.
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
	shifted := queryString(t, db, `SELECT min(event_id) FROM webhook_events WHERE integration_id=$1
		AND event_id NOT IN ($2, $3) AND received_at <> date_trunc('hour', received_at)`, id, retyped, moved)
	misfiledIn := func(rep projections.ConsistencyReport) []string {
		var ids []string
		for _, is := range rep.Issues {
			if is.Kind == projections.IssueAuditMisfiled {
				ids = append(ids, is.EventID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	// Halfway back to the start of its hour: the same hour, so every
	// count still agrees.
	tamper(t, db, id, `UPDATE webhook_events SET received_at = received_at - (received_at - date_trunc('hour', received_at)) / 2
		 WHERE integration_id=$1 AND event_id='`+shifted+`'`)
	if rep := e.consistency(id); !slices.Equal(misfiledIn(rep), []string{shifted}) || rep.Score == 100 {
		t.Fatalf("after an edit within the hour: misfiled %v, score %d; want [%s] and less than 100; issues %+v",
			misfiledIn(rep), rep.Score, shifted, rep.Issues)
	}
	tamper(t, db, id,
		`UPDATE webhook_events SET event_type='document.uploaded' WHERE integration_id=$1 AND event_id='`+retyped+`'`,
		`UPDATE webhook_events SET received_at = received_at - interval '3 hours' WHERE integration_id=$1 AND event_id='`+moved+`'`)

	rep := e.consistency(id)
	misfiled := misfiledIn(rep)
	if wantIDs := slices.Sorted(slices.Values([]string{retyped, moved, shifted})); !slices.Equal(misfiled, wantIDs) {
		t.Fatalf("misfiled audit rows named %v, want %v; issues %+v", misfiled, wantIDs, rep.Issues)
	}
	if rep.Score == 100 {
		t.Fatalf("score 100 with three audit rows misfiled")
	}
	g := e.gaps(id)
	if len(g) != 1 || g[0].Kind != projections.GapReadModel {
		t.Fatalf("gaps %+v, want one read-model gap", g)
	}
	fill := e.fill(id)
	if len(fill.Errors) != 0 || fill.AuditRefiled != 3 {
		t.Fatalf("fill %+v, want three audit rows filed back", fill)
	}
	if got := queryString(t, db, audit, id); got != wantAudit {
		t.Fatalf("audit after fill:\n got %s\nwant %s", got, wantAudit)
	}
	e.restoredExactly(db, id, want)
}

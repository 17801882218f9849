package domain

import (
	"encoding/json"
	"testing"
	"time"
)

// Unix numbers that read as times after year 9999 set no typed date: the
// read models cannot hold them (Postgres refuses such a timestamptz), and
// the value stays in the data.
func TestApplyLeavesDatesBeyondYear9999Untyped(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	due := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, tt := range []struct {
		name string
		raw  string
		want *time.Time
	}{
		{"seconds", "1709251200", &due},
		{"milliseconds", "1709251200000", &due},
		{"last second of 9999", "253402300799", &last},
		{"last millisecond of 9999", "253402300799000", &last},
		{"year 10000 in milliseconds", "253402300800000", nil},
		{"year 10000 once in UTC", `"9999-12-31T23:00:00-05:00"`, nil},
		{"year 10000", `"10000-01-01T00:00:00Z"`, nil},
		{"far beyond in milliseconds", "9000000000000000000", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Change{Key: EntityKey{IntegrationID: "i", Kind: KindTask, ID: "k"}, Op: OpUpsert, Type: TaskCreated, EventID: "e", At: at,
				Data: map[string]json.RawMessage{"id": json.RawMessage(`"k"`), "due_date": json.RawMessage(tt.raw)}}
			next, _ := Apply(Entity{}, c)
			got := next.Task.DueDate
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("due date %v, want none", got)
			case tt.want != nil && (got == nil || !got.Equal(*tt.want)):
				t.Fatalf("due date %v, want %v", got, tt.want)
			}
		})
	}
}

// applyOne applies one event of typ, whose data is raw, at at to cur.
func applyOne(t *testing.T, cur Entity, typ EventType, id string, at time.Time, raw string) Entity {
	t.Helper()
	env := Envelope{Schema: SchemaV1, EventID: id, IntegrationID: "i", Type: typ, OccurredAt: at, ReceivedAt: at,
		Source: SourceWebhook, Payload: json.RawMessage(`{"id":"` + id + `","data":` + raw + `}`)}
	c, ok, err := ChangeOf(env)
	if err != nil || !ok {
		t.Fatalf("%s: %v %v", id, ok, err)
	}
	next, _ := Apply(cur, c)
	return next
}

// Changes compare to the microsecond, as the read models keep their times:
// a create in the same microsecond as a delete, arriving after it, does
// not resurrect the entity whether the delete's state was just applied or
// reloaded from the database (which drops the nanoseconds).
func TestChangesCompareToTheMicrosecond(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 15, 10, 30, 0, 123456700, time.UTC)
	deleted := applyOne(t, Entity{}, ContactDeleted, "e_del", at, `{"id":"con_1"}`)
	reloaded := deleted
	reloaded.UpdatedAt = deleted.UpdatedAt.Truncate(time.Microsecond)
	for name, cur := range map[string]Entity{"just applied": deleted, "reloaded": reloaded} {
		got := applyOne(t, cur, ContactCreated, "e_new", at.Add(50*time.Nanosecond), `{"id":"con_1","first_name":"Ada"}`)
		if !got.Deleted || got.LastEventID != "e_del" {
			t.Errorf("%s: a create of the delete's microsecond resurrected the entity: %+v", name, got)
		}
	}
}

// A closing date is the day the value names in its own offset.
func TestClosingDateIsTheDayInTheValuesOwnOffset(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	for raw, want := range map[string]string{
		`"2024-02-01T19:30:00-05:00"`: "2024-02-01",
		`"2024-02-01T00:00:00+10:00"`: "2024-02-01",
		`"2024-02-01"`:                "2024-02-01",
		`"2024-02-01T23:59:59Z"`:      "2024-02-01",
	} {
		got := applyOne(t, Entity{}, ClosingScheduled, "e", at, `{"transaction_id":"txn_1","scheduled_at":`+raw+`}`)
		if d := got.Transaction.ClosingDate; d == nil || d.Format(time.DateOnly) != want {
			t.Errorf("scheduled_at %s: closing date %v, want %s", raw, d, want)
		}
	}
}

// A completion always leaves a completion time: a null one in the data
// does not clear the event's own.
func TestCompletionsKeepATimeWhenTheDataSaysNull(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	txn := applyOne(t, Entity{}, ClosingCompleted, "e_closed", at, `{"transaction_id":"txn_1","closed_at":null}`)
	if txn.Transaction.ClosedAt == nil || !txn.Transaction.ClosedAt.Equal(at) {
		t.Errorf("closed at %v, want the event's time %v", txn.Transaction.ClosedAt, at)
	}
	task := applyOne(t, Entity{}, TaskCompleted, "e_done", at, `{"id":"task_1","completed_at":null}`)
	if task.Task.CompletedAt == nil || !task.Task.CompletedAt.Equal(at) || task.Task.Status != "completed" {
		t.Errorf("task %+v, want completed at the event's time %v", task.Task, at)
	}
	named := at.Add(-time.Hour)
	task = applyOne(t, Entity{}, TaskCompleted, "e_done2", at, `{"id":"task_1","completed_at":"`+named.Format(time.RFC3339)+`"}`)
	if task.Task.CompletedAt == nil || !task.Task.CompletedAt.Equal(named) {
		t.Errorf("completed at %v, want the time the data names %v", task.Task.CompletedAt, named)
	}
}

// A closing event without transaction_id is the transaction's own data:
// its fields reach the payload as they reach the typed columns.
func TestClosingWithoutTransactionIDIsTheTransactionsData(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	cur := applyOne(t, Entity{}, TransactionCreated, "e1", at, `{"id":"txn_1","status":"open","file_number":"A"}`)
	got := applyOne(t, cur, ClosingCompleted, "e2", at.Add(time.Minute), `{"id":"txn_1","status":"closed","file_number":"B"}`)
	var data map[string]any
	if err := json.Unmarshal(got.Data, &data); err != nil {
		t.Fatal(err)
	}
	if got.Transaction.Status != "closed" || data["status"] != "closed" || data["file_number"] != "B" {
		t.Fatalf("typed status %q, payload %v: want both closed and B", got.Transaction.Status, data)
	}
}

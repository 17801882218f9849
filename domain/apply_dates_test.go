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

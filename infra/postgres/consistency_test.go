package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// Audit counts bucket by the UTC hour, as the log's counts and the metrics
// do, whatever the session's time zone (India's is half an hour off).
func TestAuditCountsBucketByTheUTCHour(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, map[string]string{"timezone": "Asia/Kolkata"})
	p := projections.NewProjector("test", NewProjectionStore(pool), nil)
	for i, at := range []time.Time{time.Date(2024, 1, 15, 10, 45, 0, 0, time.UTC), time.Date(2024, 1, 15, 11, 15, 0, 0, time.UTC)} {
		r := rec("t", 0, int64(i), "int_a", fmt.Sprintf("evt_%d", i), domain.TaskCreated, tBase, fmt.Sprintf(`{"id":"k%d"}`, i))
		r.Envelope.ReceivedAt = at
		apply(t, p, r)
	}
	got, err := NewConsistencyStore(pool).AuditCounts(testContext(t), "int_a")
	if err != nil {
		t.Fatal(err)
	}
	want := map[projections.AuditBucket]int64{
		{Type: domain.TaskCreated, Hour: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)}: 1,
		{Type: domain.TaskCreated, Hour: time.Date(2024, 1, 15, 11, 0, 0, 0, time.UTC)}: 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit counts %v, want %v", got, want)
	}
}

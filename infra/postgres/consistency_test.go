package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// Audit counts bucket by the UTC hour, as the log's counts and the metrics
// do, whatever the session's time zone (India's is half an hour off), and
// match the metrics rows of the same events.
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
	received := map[projections.AuditBucket]int64{}
	for b, c := range got {
		received[b] = c.Received
		if c.Completed != 1 || c.ProcessingMs <= 0 || c.MaxProcessingMs != c.ProcessingMs {
			t.Errorf("%v: %v, want one completed event with its processing time", b, c)
		}
	}
	want := map[projections.AuditBucket]int64{
		{Type: domain.TaskCreated, Hour: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)}: 1,
		{Type: domain.TaskCreated, Hour: time.Date(2024, 1, 15, 11, 0, 0, 0, time.UTC)}: 1,
	}
	if fmt.Sprint(received) != fmt.Sprint(want) {
		t.Fatalf("audit counts %v, want %v", got, want)
	}
	metrics, err := NewConsistencyStore(pool).MetricsCounts(testContext(t), "int_a")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(metrics) != fmt.Sprint(got) {
		t.Fatalf("metrics counts %v, want the audit's %v", metrics, got)
	}
}

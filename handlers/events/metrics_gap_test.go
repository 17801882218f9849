package events_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counterSum is the sum over label values of the counter name in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// The records a router fills from the log, between a partition's
// checkpoint and its consumer group's offset, are counted in
// softprohub_projection_gap_records_total.
func TestGapRecordsAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 60
	produce := func(phase int) { e.appendUpdates("m", phase, n, 3, 5) }
	stop := e.start(e.pool)
	produce(0)
	e.waitFor(30*time.Second, "phase 0 projected", func() bool { return e.count("SELECT count(*) FROM webhook_events") == n })
	stop()

	lost := e.count(`SELECT count(*) FROM webhook_events w JOIN projection_checkpoints c
		ON c.topic = w.topic AND c."partition" = w."partition" WHERE w."offset" >= c.next_offset / 2`)
	if lost == 0 {
		t.Fatal("nothing to lose")
	}
	e.loseNewestHalf()

	e.registry = prometheus.NewRegistry()
	e.start(e.pool)
	produce(1)
	e.waitFor(60*time.Second, "both phases projected", func() bool { return e.count("SELECT count(*) FROM webhook_events") == 2*n })
	// A fill cut short by an outage and tried again may count some records
	// twice; it never counts fewer than it filled.
	if got := counterSum(t, e.registry, "softprohub_projection_gap_records_total"); got < float64(lost) || got > 2*n {
		t.Errorf("softprohub_projection_gap_records_total = %v, want the %d records lost and filled from the log", got, lost)
	}
}

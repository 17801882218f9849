package events_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/projections"
)

// sample is the value of the metric name in reg whose labels include
// every label given, summed over the rest; found is false if none does.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (v float64, found bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, want := range labels {
				if have[k] != want {
					continue next
				}
			}
			found = true
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v, found
}

// hookStore lets a test run something before each transaction of the
// projection store under it.
type hookStore struct {
	projections.Store
	before func() error
}

func (s hookStore) InTx(ctx context.Context, fn func(context.Context, projections.Tx) error) error {
	if err := s.before(); err != nil {
		return err
	}
	return s.Store.InTx(ctx, fn)
}

// startWith is env.start over the given store (for writes committed
// either way), with the metrics in reg.
func (e *env) startWith(store projections.Store, reg *prometheus.Registry) (stop func()) {
	e.t.Helper()
	return e.run(store, store, reg)
}

// An attempt after the first is counted in
// softprohub_projection_retries_total of its topic, and each failed
// attempt in softprohub_projection_events_total with outcome error.
func TestRetriedAttemptsAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failures atomic.Int64
	failures.Store(2)
	store := hookStore{Store: postgres.NewProjectionStore(e.pool), before: func() error {
		if failures.Add(-1) >= 0 {
			return errors.New("flaky transaction")
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	e.startWith(store, reg)
	e.append(0, "int_a", "r1", domain.TransactionUpdated, t0, `{"id":"txn_1","status":"open"}`)
	e.waitFor(30*time.Second, "the event projected", func() bool {
		return e.count("SELECT count(*) FROM webhook_events WHERE status='COMPLETED'") == 1
	})
	topic := e.topics[0]
	retries, _ := sample(t, reg, "softprohub_projection_retries_total", map[string]string{"topic": topic})
	errs, _ := sample(t, reg, "softprohub_projection_events_total", map[string]string{"topic": topic, "outcome": "error"})
	applied, _ := sample(t, reg, "softprohub_projection_events_total", map[string]string{"topic": topic, "outcome": "applied"})
	// Failed attempts, then the one that applies: every attempt but the
	// first is a retry.
	if retries < 1 || retries != errs || applied != 1 {
		t.Errorf("retries_total = %v, events_total error = %v, applied = %v; want retries = errors >= 1, applied 1", retries, errs, applied)
	}
}

// softprohub_projection_consumer_lag is the number of records in the
// partition after the one being projected: n-1 while the first of n is
// held, 0 once the last is projected. It follows the partition's head as
// it moves: records appended while the first is held count for the
// records projected after them.
func TestConsumerLagCountsTheRecordsAfterTheOneProjected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n, more = 10, 5
	appendAt := func(i int) {
		e.append(0, "int_a", "l"+strconv.Itoa(i), domain.TransactionUpdated, t0.Add(time.Duration(i)*time.Second),
			`{"id":"txn_1","status":"s`+strconv.Itoa(i)+`"}`)
	}
	for i := range n {
		appendAt(i)
	}
	// One partition: a transaction applies one record, so the k-th
	// transaction is the k-th record's. The first and the (n+1)-th wait.
	var calls atomic.Int64
	var first, later atomic.Bool
	store := hookStore{Store: postgres.NewProjectionStore(e.pool), before: func() error {
		gate := map[int64]*atomic.Bool{1: &first, n + 1: &later}[calls.Add(1)]
		for gate != nil && !gate.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	e.startWith(store, reg)

	// The records went to one partition: find it from the gauge.
	lag := func() (float64, bool) {
		return sample(t, reg, "softprohub_projection_consumer_lag", map[string]string{"topic": e.topics[0]})
	}
	e.waitFor(30*time.Second, "a lag reported while the first record is held", func() bool { _, ok := lag(); return ok })
	time.Sleep(time.Second) // let a wrong figure settle in
	if got, _ := lag(); got != n-1 {
		t.Errorf("consumer lag while the first of %d records is projected = %v, want %d", n, got, n-1)
	}

	for i := n; i < n+more; i++ {
		appendAt(i)
	}
	time.Sleep(time.Second) // the consumer fetches ahead and learns the new head
	first.Store(true)
	e.waitFor(30*time.Second, "the first appended later held", func() bool { return calls.Load() == n+1 })
	time.Sleep(500 * time.Millisecond)
	if got, _ := lag(); got != more-1 {
		t.Errorf("consumer lag while the first of %d records appended later is projected = %v, want %d", more, got, more-1)
	}
	later.Store(true)
	e.waitFor(30*time.Second, "all projected", func() bool { return e.count("SELECT count(*) FROM webhook_events") == n+more })
	e.waitFor(10*time.Second, "lag 0", func() bool { got, _ := lag(); return got == 0 })
}

// A record delivered again after a restart, below its partition's
// checkpoint, is counted with outcome redelivered and changes nothing.
func TestRedeliveredRecordsAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 12
	stop := e.start(e.pool)
	e.appendUpdates("r", 0, n, 2, 3)
	e.waitFor(30*time.Second, "projected", func() bool { return e.count("SELECT count(*) FROM webhook_events") == n })
	stop()

	// The consumer groups lose their offsets, as a process killed before
	// it committed them to the broker would.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, topic := range e.topics {
		offs := kadm.Offsets{}
		for p := range int32(4) {
			offs.Add(kadm.Offset{Topic: topic, Partition: p, At: 0, LeaderEpoch: -1})
		}
		resp, err := adm.CommitOffsets(ctx, events.GroupName(events.ProjectionName(topic)), offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("rewind %s: %v", topic, err)
		}
	}

	e.registry = prometheus.NewRegistry()
	e.start(e.pool)
	e.waitFor(30*time.Second, "every record delivered again", func() bool {
		return counterSum(t, e.registry, "softprohub_projection_events_total") >= n
	})
	if got, _ := sample(t, e.registry, "softprohub_projection_events_total", map[string]string{"outcome": "redelivered"}); got != n {
		t.Errorf("events_total redelivered = %v, want %d", got, n)
	}
	if got := e.count("SELECT count(*) FROM webhook_events"); got != n {
		t.Errorf("audit rows after the redelivery = %d, want %d", got, n)
	}
}

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

// While a record is retried (the database unavailable), the consumer lag
// keeps up with the records appended behind it instead of keeping the
// figure it had when the record was taken.
func TestConsumerLagRisesDuringAStall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := hookStore{Store: postgres.NewProjectionStore(e.pool), before: func() error {
		return projections.Unavailable("begin", errors.New("database down"))
	}}
	reg := prometheus.NewRegistry()
	e.startWith(store, reg)
	lag := func() float64 {
		v, _ := sample(t, reg, "softprohub_projection_consumer_lag", map[string]string{"topic": e.topics[0]})
		return v
	}
	e.append(0, "int_a", "s0", domain.TransactionUpdated, t0, `{"id":"txn_1","status":"s0"}`)
	e.waitFor(30*time.Second, "the first record taken", func() bool {
		_, ok := sample(t, reg, "softprohub_projection_consumer_lag", map[string]string{"topic": e.topics[0]})
		return ok
	})
	const more = 10
	for i := 1; i <= more; i++ {
		e.append(0, "int_a", "s"+strconv.Itoa(i), domain.TransactionUpdated, t0.Add(time.Duration(i)*time.Second),
			`{"id":"txn_1","status":"s`+strconv.Itoa(i)+`"}`)
	}
	e.waitFor(5*time.Second, "the lag at the records appended behind the stalled one", func() bool { return lag() == more })
}

// When a partition moves to another member of the group, its lag is no
// longer reported by the member it left.
func TestConsumerLagForgetsPartitionsThatMoveAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	e.startWith(postgres.NewProjectionStore(e.pool), reg)
	partitions := func(r *prometheus.Registry) int {
		mfs, err := r.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			if mf.GetName() != "softprohub_projection_consumer_lag" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "topic" && l.GetValue() == e.topics[0] {
						n++
					}
				}
			}
		}
		return n
	}
	e.appendUpdates("m", 0, 40, 20, 5)
	e.waitFor(30*time.Second, "every partition's lag reported", func() bool { return partitions(reg) == 4 })

	// A second member joins the groups and takes some partitions.
	reg2 := prometheus.NewRegistry()
	e.startWith(postgres.NewProjectionStore(e.pool), reg2)
	e.waitFor(60*time.Second, "the partitions shared", func() bool {
		n1, n2 := partitions(reg), partitions(reg2)
		return n1 > 0 && n2 > 0 && n1+n2 == 4
	})
}

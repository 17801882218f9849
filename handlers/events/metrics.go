package events

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// promMetrics are the softprohub_projection_* metrics, documented in the
// README.
type promMetrics struct {
	// events counts attempts by topic, event type and outcome (applied,
	// stale, skipped, duplicate, redelivered, permanent, unavailable,
	// cancelled, error).
	events *prometheus.CounterVec
	// latency is the duration of one attempt.
	latency *prometheus.HistogramVec
	// lag is, for each partition this process claims, its records after
	// the one being projected; a partition is forgotten when its claim
	// ends.
	lag *prometheus.GaugeVec
	// retries counts attempts after the first.
	retries *prometheus.CounterVec
	// poisoned counts events sent to the poison topic.
	poisoned *prometheus.CounterVec
	// batch is the number of messages each projection transaction applied.
	batch *prometheus.HistogramVec
	// tx is the duration of each projection transaction.
	tx *prometheus.HistogramVec
	// gapRecords counts records applied from the log to fill gaps.
	gapRecords *prometheus.CounterVec
	// refolds counts entities folded again from the log after a retried
	// event reached them out of log order.
	refolds *prometheus.CounterVec
}

func newPromMetrics(reg prometheus.Registerer) (*promMetrics, error) {
	m := &promMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_projection_events_total",
			Help: "Projection attempts by topic, event type and outcome.",
		}, []string{"topic", "type", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "softprohub_projection_duration_seconds",
			Help:    "Time to project one event (one attempt), by topic.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "softprohub_projection_consumer_lag",
			Help: "Records in the partition after the one being projected.",
		}, []string{"topic", "partition"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_projection_retries_total",
			Help: "Projection attempts after the first, by topic.",
		}, []string{"topic"}),
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_projection_poisoned_total",
			Help: "Events sent to the poison topic, by original topic.",
		}, []string{"topic"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "softprohub_projection_batch_size",
			Help:    "Messages applied per projection transaction (group commit), by topic.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}, []string{"topic"}),
		tx: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "softprohub_projection_transaction_seconds",
			Help:    "Duration of one projection transaction, load to commit, by topic.",
			Buckets: []float64{.001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 5},
		}, []string{"topic"}),
		gapRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_projection_gap_records_total",
			Help: "Records read from the log to fill a gap between a partition's checkpoint and the message delivered, by topic.",
		}, []string{"topic"}),
		refolds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_projection_refolds_total",
			Help: "Entities folded again from the log after a retried event, or a record of a lagging topic, reached them out of log order, by result (ok, error).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.latency, m.lag, m.retries, m.poisoned, m.batch, m.tx, m.gapRecords, m.refolds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register projection metrics: %w", err)
		}
	}
	return m, nil
}

func (m *promMetrics) setLag(topic string, partition int32, lag int64) {
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(lag))
}

func (m *promMetrics) forgetLag(topic string, partition int32) {
	m.lag.DeleteLabelValues(topic, strconv.Itoa(int(partition)))
}

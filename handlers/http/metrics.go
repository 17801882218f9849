package httpapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// Metrics are the edge's Prometheus collectors.
type Metrics struct {
	ingestRequests *prometheus.CounterVec
	ingestDuration prometheus.Histogram
	appendDuration *prometheus.HistogramVec
	dedupHits      prometheus.Counter
	redisDegraded  prometheus.Counter
	// dedupUnconfirmed counts appends whose fingerprint stayed pending.
	dedupUnconfirmed prometheus.Counter
	apiRequests      *prometheus.CounterVec
	apiDuration      *prometheus.HistogramVec
}

// NewMetrics registers the edge's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	latency := []float64{.0005, .001, .002, .004, .006, .008, .01, .015, .02, .03, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		ingestRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_ingest_requests_total",
			Help: "Webhook requests by outcome code (ACCEPTED, DUPLICATE or the rejection code).",
		}, []string{"code"}),
		ingestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "softprohub_ingest_request_duration_seconds", Help: "Webhook request latency, receipt to response.",
			Buckets: latency,
		}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "softprohub_ingest_append_duration_seconds", Help: "Time for the broker to acknowledge an append, by topic.",
			Buckets: latency,
		}, []string{"topic"}),
		dedupHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softprohub_ingest_dedup_hits_total", Help: "Webhooks answered as duplicates.",
		}),
		redisDegraded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softprohub_ingest_redis_degraded_total", Help: "Webhooks appended without rate limit or dedup because Redis was unreachable.",
		}),
		dedupUnconfirmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "softprohub_ingest_dedup_unconfirmed_total",
			Help: "Webhooks appended whose dedup fingerprint could not be confirmed afterwards (a copy sent once it expires is appended again).",
		}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "softprohub_api_requests_total", Help: "Management API requests by route and status.",
		}, []string{"route", "status"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "softprohub_api_request_duration_seconds", Help: "Management API latency by route.",
			Buckets: latency,
		}, []string{"route"}),
	}
	reg.MustRegister(m.ingestRequests, m.ingestDuration, m.appendDuration, m.dedupHits, m.redisDegraded, m.dedupUnconfirmed, m.apiRequests, m.apiDuration)
	return m
}

// InstrumentAppender wraps a so every append's acknowledgement latency is
// observed by topic.
func (m *Metrics) InstrumentAppender(a ingest.Appender) ingest.Appender {
	return timedAppender{next: a, hist: m.appendDuration}
}

type timedAppender struct {
	next ingest.Appender
	hist *prometheus.HistogramVec
}

func (t timedAppender) Append(ctx context.Context, e domain.Envelope) (ingest.Position, error) {
	start := time.Now()
	pos, err := t.next.Append(ctx, e)
	if err == nil {
		t.hist.WithLabelValues(pos.Topic).Observe(time.Since(start).Seconds())
	}
	return pos, err
}

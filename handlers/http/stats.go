package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/roisystems/softprohub/projections"
)

// statsPeriods are the periods of GET …/webhooks/stats.
var statsPeriods = map[string]time.Duration{
	"1h":  time.Hour,
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
}

type webhookStats struct {
	TotalEvents int64 `json:"totalEvents"`
	Received    int64 `json:"received"`
	Completed   int64 `json:"completed"`
	Failed      int64 `json:"failed"`
	Processing  int64 `json:"processing"`
	// Skipped events (types that change no entity) count as successes.
	Skipped             int64   `json:"skipped"`
	SuccessRate         float64 `json:"successRate"`
	FailureRate         float64 `json:"failureRate"`
	AvgProcessingTimeMs int64   `json:"avgProcessingTimeMs"`
}

type queueStatsView struct {
	QueueName string `json:"queueName"`
	Waiting   int64  `json:"waiting"`
	Active    int64  `json:"active"`
	Completed int64  `json:"completed"`
	Failed    int64  `json:"failed"`
	Delayed   int64  `json:"delayed"`
	Paused    bool   `json:"paused"`
	// LagUnavailable says the broker did not answer for the consumer
	// group's lag: waiting is 0 because it is unknown, not because
	// nothing waits.
	LagUnavailable bool `json:"lagUnavailable,omitempty"`
	// PausedUnavailable says the database did not answer for the pause
	// flags: paused is false because it is unknown.
	PausedUnavailable bool `json:"pausedUnavailable,omitempty"`
}

// stats is GET …/webhooks/stats: figures of the events received in the
// period, from the read models, and per-topic queue figures.
func (q *queryAPI) stats(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	period := p.oneOf("period", "24h", "1h", "24h", "7d", "30d")
	integrationID := p.str("integrationId")
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	end := q.Now().UTC()
	start := end.Add(-statsPeriods[period])
	counts, err := q.Stats.Stats(r.Context(), projections.StatsFilter{IntegrationID: integrationID, Start: start, End: end})
	if err != nil {
		writeQueryError(w, err)
		return
	}
	var ws webhookStats
	perTopic := map[string]*queueStatsView{}
	for _, t := range q.Topics {
		perTopic[t] = &queueStatsView{QueueName: t}
	}
	for _, c := range counts {
		ws.Received += c.Received
		ws.Completed += c.Completed
		ws.Failed += c.Failed
		ws.Skipped += c.Skipped
		ws.Processing += c.InFlight()
		if qs := perTopic[c.EventType.Topic()]; qs != nil {
			qs.Completed += c.Completed + c.Skipped
			qs.Failed += c.Failed
		}
	}
	ws.TotalEvents = ws.Received
	ws.SuccessRate = projections.Percent(ws.Completed+ws.Skipped, ws.TotalEvents)
	ws.FailureRate = projections.Percent(ws.Failed, ws.TotalEvents)
	ws.AvgProcessingTimeMs = projections.Total(counts, nil).AvgProcessingMs()
	writeData(w, http.StatusOK, map[string]any{
		"period":        period,
		"integrationId": nullable(integrationID),
		"startDate":     start.Format(time.RFC3339),
		"endDate":       end.Format(time.RFC3339),
		"webhookStats":  ws,
		"queueStats":    q.queueStats(r.Context(), perTopic),
	})
}

// queueStats fills in the live figures. Lag comes from the broker and
// pauses from the database; if either does not answer, its figures are
// left at 0 and false rather than failing the stats, and marked
// lagUnavailable or pausedUnavailable.
func (q *queryAPI) queueStats(ctx context.Context, perTopic map[string]*queueStatsView) []queueStatsView {
	var lag map[string]int64
	var lagErr error
	if q.Lag != nil {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		lag, lagErr = q.Lag.Lag(lctx)
		cancel()
	}
	var paused map[string]bool
	var pausedErr error
	if q.Pauses != nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		paused, pausedErr = q.Pauses.Paused(pctx)
		cancel()
	}
	out := make([]queueStatsView, 0, len(q.Topics))
	for _, t := range q.Topics {
		qs := perTopic[t]
		qs.Waiting = max(lag[t], 0)
		qs.LagUnavailable = lagErr != nil
		qs.Paused = paused[t]
		qs.PausedUnavailable = pausedErr != nil
		if q.Gauges != nil {
			qs.Active, qs.Delayed = q.Gauges.Gauges(t)
		}
		out = append(out, *qs)
	}
	return out
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

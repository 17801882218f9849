package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/roisystems/softprohub/ingest"
)

type webhookResponse struct {
	Success       bool   `json:"success"`
	Message       string `json:"message"`
	IntegrationID string `json:"integrationId"`
	EventType     string `json:"eventType"`
	EventID       string `json:"eventId"`
	Duplicate     bool   `json:"duplicate,omitempty"`
}

// webhook answers 200 only once the event is on the log (or was already).
func (s *server) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	res, err := s.receiver.Receive(r.Context(), ingest.Request{
		IntegrationID: pathParam(r, "integrationId"),
		ContentType:   r.Header.Get("Content-Type"),
		Header:        r.Header,
		Body:          r.Body,
		CorrelationID: middleware.GetReqID(r.Context()),
	})
	code := "ACCEPTED"
	if err != nil {
		var rj *ingest.Rejection
		if !errors.As(err, &rj) {
			rj = &ingest.Rejection{Code: ingest.CodeUnavailable, Message: "internal error", Err: err}
		}
		status := writeRejection(w, rj)
		code = string(rj.Code)
		if status >= 500 {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook not accepted",
				slog.String("integrationId", pathParam(r, "integrationId")), slog.String("code", code),
				slog.String("requestId", middleware.GetReqID(r.Context())), slog.Any("err", rj.Err))
		}
	} else {
		if res.Degraded != nil {
			s.metrics.redisDegraded.Inc()
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook appended without dedup or rate limit: redis unreachable",
				slog.String("integrationId", res.IntegrationID), slog.String("eventId", res.EventID), slog.Any("err", res.Degraded))
		}
		if res.Unconfirmed != nil {
			s.metrics.dedupUnconfirmed.Inc()
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook appended; its dedup fingerprint was not confirmed",
				slog.String("integrationId", res.IntegrationID), slog.String("eventId", res.EventID), slog.Any("err", res.Unconfirmed))
		}
		if res.Duplicate {
			code = "DUPLICATE"
			s.metrics.dedupHits.Inc()
		}
		writeJSON(w, http.StatusOK, webhookResponse{
			Success: true, Message: "Webhook received", IntegrationID: res.IntegrationID,
			EventType: res.EventType, EventID: res.EventID, Duplicate: res.Duplicate,
		})
	}
	s.metrics.ingestRequests.WithLabelValues(code).Inc()
	s.metrics.ingestDuration.Observe(time.Since(start).Seconds())
}

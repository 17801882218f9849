package httpapi

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/roisystems/softprohub/projections"
)

// retry is POST …/webhooks/retry/{eventId}: re-append one FAILED event.
// 409 when it is not FAILED (or another retry has just taken it). It takes
// no body: integrationId goes in the query string, and a body naming it
// (or anything else) is refused rather than ignored.
func (q *queryAPI) retry(w http.ResponseWriter, r *http.Request) {
	if err := decodeNoBody(r); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	p := newParams(r)
	ref := projections.EventRef{ID: pathParam(r, "eventId"), IntegrationID: p.str("integrationId")}
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	c, err := q.Retrier.Retry(r.Context(), ref, middleware.GetReqID(r.Context()))
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{
		"eventId":       c.EventID,
		"rowId":         c.RowID,
		"integrationId": c.IntegrationID,
		"message":       "Event retry queued",
	})
}

type retryBatchRequest struct {
	IntegrationID string   `json:"integrationId"`
	EventIDs      []string `json:"eventIds"`
}

// maxBatchIDs bounds eventIds of one batch retry.
const maxBatchIDs = 10000

// retryBatch is POST …/webhooks/retry-batch: re-append the FAILED events of
// an integration, or those of eventIds among them.
func (q *queryAPI) retryBatch(w http.ResponseWriter, r *http.Request) {
	var req retryBatchRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	switch {
	case req.IntegrationID == "":
		writeError(w, http.StatusBadRequest, codeBadRequest, "integrationId is required")
		return
	case len(req.EventIDs) > maxBatchIDs:
		writeError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("eventIds: at most %d", maxBatchIDs))
		return
	case req.EventIDs != nil && len(req.EventIDs) == 0:
		writeError(w, http.StatusBadRequest, codeBadRequest, "eventIds: omit it to retry every FAILED event, or list at least one")
		return
	}
	if _, err := q.Integrations.Integration(r.Context(), req.IntegrationID); err != nil {
		writeQueryError(w, err)
		return
	}
	n, err := q.Retrier.RetryFailed(r.Context(), req.IntegrationID, req.EventIDs, middleware.GetReqID(r.Context()))
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{
		"retriedCount": n,
		"message":      fmt.Sprintf("%d events queued for retry", n),
	})
}

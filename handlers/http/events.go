package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// eventView is one webhook event as the original API showed it; id is
// SoftPro's event id, rowId the audit row's own.
type eventView struct {
	ID                  string           `json:"id"`
	RowID               string           `json:"rowId"`
	IntegrationID       string           `json:"integrationId"`
	EventType           domain.EventType `json:"eventType"`
	Status              string           `json:"status"`
	Source              domain.Source    `json:"source"`
	OccurredAt          *time.Time       `json:"occurredAt"`
	ReceivedAt          time.Time        `json:"receivedAt"`
	ProcessingStartedAt *time.Time       `json:"processingStartedAt"`
	ProcessedAt         *time.Time       `json:"processedAt"`
	FailedAt            *time.Time       `json:"failedAt"`
	ProcessingTimeMs    *int64           `json:"processingTimeMs"`
	RetryCount          int              `json:"retryCount"`
	LastRetryAt         *time.Time       `json:"lastRetryAt"`
	Error               *string          `json:"error"`
}

// eventDetailView adds the payload, where the event lives on the log and
// its integration.
type eventDetailView struct {
	eventView
	Payload     json.RawMessage   `json:"payload"`
	Log         logPositionView   `json:"log"`
	Integration *integrationBrief `json:"integration"`
}

type logPositionView struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type integrationBrief struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organizationId"`
	Active         bool   `json:"active"`
}

func viewEvent(r projections.EventRow) eventView {
	v := eventView{
		ID: r.EventID, RowID: r.ID, IntegrationID: r.IntegrationID, EventType: r.EventType, Status: string(r.Status),
		Source: r.Source, ReceivedAt: r.ReceivedAt.UTC(), ProcessingStartedAt: utc(r.ProcessingStartedAt),
		ProcessedAt: utc(r.ProcessedAt), FailedAt: utc(r.FailedAt), ProcessingTimeMs: r.ProcessingTimeMs,
		RetryCount: r.RetryCount, LastRetryAt: utc(r.LastRetryAt),
	}
	if !r.OccurredAt.IsZero() {
		v.OccurredAt = utc(&r.OccurredAt)
	}
	if r.Error != "" {
		e := r.Error
		v.Error = &e
	}
	return v
}

type pagePagination struct {
	Page       int   `json:"page"`
	Limit      int   `json:"limit"`
	Total      int64 `json:"total"`
	TotalPages int64 `json:"totalPages"`
}

var eventStatuses = []string{
	string(projections.StatusReceived), string(projections.StatusProcessing), string(projections.StatusCompleted),
	string(projections.StatusFailed), string(projections.StatusSkipped),
}

// maxOffset is the largest row offset a page of the events list may start
// at.
const maxOffset = 1 << 31

// listEvents is GET …/webhooks/events: newest first, page by page.
func (q *queryAPI) listEvents(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	f := projections.EventFilter{
		IntegrationID: p.str("integrationId"),
		EventType:     domain.EventType(p.str("eventType")),
		Status:        projections.Status(p.oneOf("status", "", eventStatuses...)),
		Page:          p.positive("page", 1),
		Limit:         p.limit(),
	}
	if t := p.time("startDate", false); t != nil {
		f.Start = *t
	}
	if t := p.time("endDate", true); t != nil {
		f.End = *t
		if f.End.IsZero() {
			// The filter's zero End is no bound; the first instant of year
			// 1 bounds to nothing, as one microsecond later does (no event
			// is that old).
			f.End = f.End.Add(time.Microsecond)
		}
	}
	if p.err == nil && !f.Start.IsZero() && !f.End.IsZero() && f.End.Before(f.Start) {
		p.fail("endDate", "must not be before startDate")
	}
	// (page-1)*limit > maxOffset, by division: the product of a huge page
	// does not fit in 64 bits and would wrap around.
	if p.err == nil && f.Page-1 > maxOffset/f.Limit {
		p.fail("page", "is too far")
	}
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	page, err := q.Events.Events(r.Context(), f)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	views := make([]eventView, len(page.Events))
	for i, e := range page.Events {
		views[i] = viewEvent(e)
	}
	pages := (page.Total + int64(f.Limit) - 1) / int64(f.Limit)
	writeData(w, http.StatusOK, map[string]any{
		"events":     views,
		"pagination": pagePagination{Page: f.Page, Limit: f.Limit, Total: page.Total, TotalPages: pages},
	})
}

// getEvent is GET …/webhooks/events/{eventId}: by SoftPro's event id
// (integrationId disambiguates) or by row id.
func (q *queryAPI) getEvent(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	ref := projections.EventRef{ID: pathParam(r, "eventId"), IntegrationID: p.str("integrationId")}
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	ev, err := q.Events.Event(r.Context(), ref)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	v := eventDetailView{eventView: viewEvent(ev), Payload: ev.Payload,
		Log: logPositionView{Topic: ev.Topic, Partition: ev.Partition, Offset: ev.Offset}}
	if len(v.Payload) == 0 {
		v.Payload = json.RawMessage("null")
	}
	in, err := q.Integrations.Integration(r.Context(), ev.IntegrationID)
	switch {
	case err == nil:
		v.Integration = &integrationBrief{ID: in.ID, OrganizationID: in.OrganizationID, Active: in.Active}
	case !errors.Is(err, domain.ErrNotFound):
		writeQueryError(w, err)
		return
	}
	writeData(w, http.StatusOK, v)
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// EventQueries reads the webhook event audit.
type EventQueries interface {
	Events(ctx context.Context, f projections.EventFilter) (projections.EventPage, error)
	Event(ctx context.Context, ref projections.EventRef) (projections.EventRow, error)
}

// EntityQueries reads the entity read models.
type EntityQueries interface {
	Entities(ctx context.Context, f projections.EntityFilter) (projections.EntityPage, error)
	Entity(ctx context.Context, kind domain.Kind, integrationID, id string, includeDeleted bool) (domain.Entity, error)
	StatusHistory(ctx context.Context, f projections.HistoryFilter) (projections.HistoryPage, error)
}

// StatsQueries counts audit rows per event type.
type StatsQueries interface {
	Stats(ctx context.Context, f projections.StatsFilter) ([]projections.Counts, error)
}

// Retrier re-appends FAILED events (projections.Retrier).
type Retrier interface {
	Retry(ctx context.Context, ref projections.EventRef, correlationID string) (projections.Claim, error)
	RetryFailed(ctx context.Context, integrationID string, eventIDs []string, correlationID string) (int, error)
}

// IntegrationLookup finds one integration.
type IntegrationLookup interface {
	Integration(ctx context.Context, id string) (domain.Integration, error)
}

// QueueLag reports each topic's consumer lag: records appended that its
// consumer group has not committed.
type QueueLag interface {
	Lag(ctx context.Context) (map[string]int64, error)
}

// QueueGauges reports what a topic's handler is doing right now: messages
// in flight and messages waiting in retry backoff.
type QueueGauges interface {
	Gauges(topic string) (active, delayed int64)
}

// QueuePauses reports the topics whose projection is paused right now.
type QueuePauses interface {
	Paused(ctx context.Context) (map[string]bool, error)
}

// QueryDeps are the collaborators of the query and retry API. Events,
// Entities, Stats, Retrier and Integrations are required; Lag, Gauges and
// Pauses are optional (their figures are then 0 or false).
type QueryDeps struct {
	Events       EventQueries
	Entities     EntityQueries
	Stats        StatsQueries
	Retrier      Retrier
	Integrations IntegrationLookup
	Lag          QueueLag
	Gauges       QueueGauges
	Pauses       QueuePauses
	// Topics are reported in queueStats, in this order (default
	// domain.AllTopics).
	Topics []string
	// Now is the clock of the stats periods (default time.Now).
	Now func() time.Time
}

type queryAPI struct {
	QueryDeps
}

// QueryRoutes returns the routes of the events, retry, stats and analyst
// query API, to be mounted on the authenticated /api/v1 router
// (Deps.Mount): reads for analysts and admins, retries for admins.
func QueryRoutes(d QueryDeps) func(r chi.Router) {
	if d.Events == nil || d.Entities == nil || d.Stats == nil || d.Retrier == nil || d.Integrations == nil {
		panic("httpapi.QueryRoutes: nil events, entities, stats, retrier or integrations")
	}
	if d.Topics == nil {
		d.Topics = domain.AllTopics
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	q := &queryAPI{d}
	return func(r chi.Router) {
		const base = "/integrations/softpro"
		r.Group(func(r chi.Router) {
			r.Use(requireRole(RoleAdmin), textPathIDs)
			r.Post(base+"/webhooks/retry/{eventId}", q.retry)
			r.Post(base+"/webhooks/retry-batch", q.retryBatch)
		})
		r.Group(func(r chi.Router) {
			r.Use(requireRole(RoleAdmin, RoleAnalyst))
			r.Get(base+"/webhooks/events", q.listEvents)
			r.Get(base+"/webhooks/events/{eventId}", q.getEvent)
			r.Get(base+"/webhooks/stats", q.stats)
			r.Get(base+"/{integrationId}/transactions", q.listEntities(domain.KindTransaction))
			r.Get(base+"/{integrationId}/transactions/{id}", q.getTransaction)
			r.Get(base+"/{integrationId}/transactions/{id}/status-history", q.statusHistory)
			r.Get(base+"/{integrationId}/transactions/{id}/documents", q.transactionChildren(domain.KindDocument))
			r.Get(base+"/{integrationId}/transactions/{id}/tasks", q.transactionChildren(domain.KindTask))
			r.Get(base+"/{integrationId}/contacts", q.listEntities(domain.KindContact))
			r.Get(base+"/{integrationId}/documents", q.listEntities(domain.KindDocument))
			r.Get(base+"/{integrationId}/tasks", q.listEntities(domain.KindTask))
		})
	}
}

// Page sizes of every list.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// badParam is a query parameter the client got wrong; the 400 names it.
type badParam struct {
	name, reason string
}

func (e *badParam) Error() string { return fmt.Sprintf("invalid parameter %s: %s", e.name, e.reason) }

// params reads query parameters, keeping the first problem.
type params struct {
	v   url.Values
	err error
}

func newParams(r *http.Request) *params { return &params{v: r.URL.Query()} }

func (p *params) fail(name, reason string) {
	if p.err == nil {
		p.err = &badParam{name, reason}
	}
}

// str reads a text parameter, "" when absent. Postgres text holds neither
// NUL nor bytes that are not UTF-8, so no row could match such a value:
// the parameter is refused instead of failing the query.
func (p *params) str(name string) string {
	s := strings.TrimSpace(p.v.Get(name))
	if !isText(s) {
		p.fail(name, "must be UTF-8 text without NUL characters")
		return ""
	}
	return s
}

// isText reports whether s can be a Postgres text value.
func isText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// positive reads an integer of at least 1, def when absent.
func (p *params) positive(name string, def int) int {
	s := p.str(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		p.fail(name, "must be a positive integer")
		return def
	}
	return n
}

// limit reads the page size: default 50, at most 500 (larger asks are
// capped, not refused, also those beyond any integer type).
func (p *params) limit() int {
	s := p.str("limit")
	if s == "" || p.err != nil {
		return defaultLimit
	}
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-") {
		return maxLimit
	}
	if err != nil || n < 1 {
		p.fail("limit", "must be a positive integer")
		return defaultLimit
	}
	return min(n, maxLimit)
}

// time reads an RFC 3339 timestamp or an ISO date. A date is the start of
// that day (UTC), or its last instant when endOfDay is set.
func (p *params) time(name string, endOfDay bool) *time.Time {
	s := p.str(name)
	if s == "" {
		return nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t = t.UTC()
		return &t
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		p.fail(name, "must be an ISO date (2024-01-15) or an RFC 3339 time (2024-01-15T10:30:00Z)")
		return nil
	}
	if endOfDay {
		t = t.Add(24*time.Hour - time.Microsecond)
	}
	return &t
}

// date reads an ISO date of year 1 or later: Go reads year 0000, which
// Postgres' date does not hold.
func (p *params) date(name string) *time.Time {
	s := p.str(name)
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Year() < 1 {
		p.fail(name, "must be an ISO date (2024-01-15)")
		return nil
	}
	return &t
}

func (p *params) boolean(name string) bool {
	s := p.str(name)
	if s == "" {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.fail(name, "must be true or false")
	}
	return b
}

// oneOf reads a value from allowed, def when absent.
func (p *params) oneOf(name, def string, allowed ...string) string {
	s := p.str(name)
	if s == "" {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	p.fail(name, "must be one of "+strings.Join(allowed, ", "))
	return def
}

func (p *params) cursor() *projections.Cursor {
	s := p.str("cursor")
	if s == "" {
		return nil
	}
	c, err := projections.DecodeCursor(s)
	if err != nil || !isText(c.Key) || !isText(c.ID) {
		p.fail("cursor", "not a cursor this API returned")
		return nil
	}
	return &c
}

// writeQueryError maps query and retry errors to the API's status codes.
func writeQueryError(w http.ResponseWriter, err error) {
	var bp *badParam
	switch {
	case errors.As(err, &bp):
		writeError(w, http.StatusBadRequest, codeBadRequest, bp.Error())
	case errors.Is(err, projections.ErrBadCursor):
		writeError(w, http.StatusBadRequest, codeBadRequest, "invalid parameter cursor: not a cursor this API returned")
	case errors.Is(err, projections.ErrNotFound), errors.Is(err, domain.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "not found")
	case errors.Is(err, projections.ErrAmbiguous):
		writeError(w, http.StatusConflict, "AMBIGUOUS_EVENT_ID",
			"the event id names events of several integrations: pass integrationId or use the event's rowId")
	case errors.Is(err, projections.ErrNotFailed):
		writeError(w, http.StatusConflict, "EVENT_NOT_FAILED", "only FAILED events can be retried")
	case errors.Is(err, projections.ErrNotOnLog):
		writeError(w, http.StatusUnprocessableEntity, "EVENT_NOT_ON_LOG", "the event's record cannot be read back from the log")
	case outage(err):
		writeUnavailable(w)
	default:
		writeError(w, http.StatusInternalServerError, codeInternal, "internal error")
	}
}

// keysetPagination is the pagination of the analyst lists: keyset, with
// the cursor of the next page.
type keysetPagination struct {
	Limit      int     `json:"limit"`
	Total      int64   `json:"total"`
	HasMore    bool    `json:"hasMore"`
	NextCursor *string `json:"nextCursor"`
}

func keyset(limit int, total int64, next *projections.Cursor) keysetPagination {
	p := keysetPagination{Limit: limit, Total: total, HasMore: next != nil}
	if next != nil {
		s := next.Encode()
		p.NextCursor = &s
	}
	return p
}

// entityCommon are the fields every entity view has.
type entityCommon struct {
	ID            string     `json:"id"`
	IntegrationID string     `json:"integrationId"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	LastEventID   string     `json:"lastEventId"`
	Deleted       bool       `json:"deleted"`
	DeletedAt     *time.Time `json:"deletedAt"`
}

type transactionView struct {
	entityCommon
	FileNumber      string          `json:"fileNumber"`
	Status          string          `json:"status"`
	PropertyAddress string          `json:"propertyAddress"`
	ClosingDate     *string         `json:"closingDate"`
	ClosedAt        *time.Time      `json:"closedAt"`
	Data            json.RawMessage `json:"data"`
}

type contactView struct {
	entityCommon
	TransactionID string          `json:"transactionId"`
	FirstName     string          `json:"firstName"`
	LastName      string          `json:"lastName"`
	Email         string          `json:"email"`
	Phone         string          `json:"phone"`
	Role          string          `json:"role"`
	Data          json.RawMessage `json:"data"`
}

type documentView struct {
	entityCommon
	TransactionID string          `json:"transactionId"`
	Name          string          `json:"name"`
	DocumentType  string          `json:"documentType"`
	URL           string          `json:"url"`
	Data          json.RawMessage `json:"data"`
}

type taskView struct {
	entityCommon
	TransactionID string          `json:"transactionId"`
	Title         string          `json:"title"`
	Status        string          `json:"status"`
	AssignedTo    string          `json:"assignedTo"`
	DueDate       *time.Time      `json:"dueDate"`
	CompletedAt   *time.Time      `json:"completedAt"`
	Data          json.RawMessage `json:"data"`
}

// viewEntity is an entity as the analyst API shows it: the common fields,
// the kind's typed fields, and SoftPro's record as data.
func viewEntity(e domain.Entity) any {
	c := entityCommon{ID: e.Key.ID, IntegrationID: e.Key.IntegrationID, CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(),
		LastEventID: e.LastEventID, Deleted: e.Deleted, DeletedAt: utc(e.DeletedAt)}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	switch e.Key.Kind {
	case domain.KindTransaction:
		f := e.Transaction
		v := transactionView{entityCommon: c, FileNumber: f.FileNumber, Status: f.Status, PropertyAddress: f.PropertyAddress,
			ClosedAt: utc(f.ClosedAt), Data: data}
		if f.ClosingDate != nil {
			d := f.ClosingDate.Format(time.DateOnly)
			v.ClosingDate = &d
		}
		return v
	case domain.KindContact:
		f := e.Contact
		return contactView{entityCommon: c, TransactionID: f.TransactionID, FirstName: f.FirstName, LastName: f.LastName,
			Email: f.Email, Phone: f.Phone, Role: f.Role, Data: data}
	case domain.KindDocument:
		f := e.Document
		return documentView{entityCommon: c, TransactionID: f.TransactionID, Name: f.Name, DocumentType: f.DocumentType, URL: f.URL, Data: data}
	default:
		f := e.Task
		return taskView{entityCommon: c, TransactionID: f.TransactionID, Title: f.Title, Status: f.Status, AssignedTo: f.AssignedTo,
			DueDate: utc(f.DueDate), CompletedAt: utc(f.CompletedAt), Data: data}
	}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// listKey is the JSON field holding a kind's list.
var listKey = map[domain.Kind]string{
	domain.KindTransaction: "transactions",
	domain.KindContact:     "contacts",
	domain.KindDocument:    "documents",
	domain.KindTask:        "tasks",
}

// entityFilter reads the filters of kind's list.
func entityFilter(r *http.Request, kind domain.Kind) (projections.EntityFilter, error) {
	p := newParams(r)
	f := projections.EntityFilter{
		Kind:           kind,
		IntegrationID:  pathParam(r, "integrationId"),
		IncludeDeleted: p.boolean("includeDeleted"),
		UpdatedSince:   p.time("updatedSince", false),
		After:          p.cursor(),
		Limit:          p.limit(),
		Desc:           p.oneOf("order", "asc", "asc", "desc") == "desc",
	}
	switch kind {
	case domain.KindTransaction:
		f.Sort = projections.Sort(p.oneOf("sort", string(projections.SortUpdatedAt), string(projections.SortUpdatedAt), string(projections.SortClosingDate)))
		f.Status = p.str("status")
		f.FileNumber = p.str("fileNumber")
		f.ClosingFrom = p.date("closingFrom")
		f.ClosingTo = p.date("closingTo")
		if f.ClosingFrom != nil && f.ClosingTo != nil && f.ClosingTo.Before(*f.ClosingFrom) {
			p.fail("closingTo", "must not be before closingFrom")
		}
	case domain.KindContact:
		f.Sort = projections.Sort(p.oneOf("sort", string(projections.SortUpdatedAt), string(projections.SortUpdatedAt)))
		f.Email = p.str("email")
		f.NamePrefix = p.str("name")
	case domain.KindDocument:
		f.Sort = projections.Sort(p.oneOf("sort", string(projections.SortUpdatedAt), string(projections.SortUpdatedAt)))
		f.TransactionID = p.str("transactionId")
	case domain.KindTask:
		f.Sort = projections.Sort(p.oneOf("sort", string(projections.SortUpdatedAt), string(projections.SortUpdatedAt)))
		f.Status = p.str("status")
		f.DueBefore = p.time("dueBefore", false)
		f.TransactionID = p.str("transactionId")
	}
	return f, p.err
}

func (q *queryAPI) writeEntities(w http.ResponseWriter, r *http.Request, f projections.EntityFilter) {
	page, err := q.Entities.Entities(r.Context(), f)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	views := make([]any, len(page.Entities))
	for i, e := range page.Entities {
		views[i] = viewEntity(e)
	}
	writeData(w, http.StatusOK, map[string]any{listKey[f.Kind]: views, "pagination": keyset(f.Limit, page.Total, page.Next)})
}

func (q *queryAPI) listEntities(kind domain.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := entityFilter(r, kind)
		if err != nil {
			writeQueryError(w, err)
			return
		}
		q.writeEntities(w, r, f)
	}
}

// transaction looks up the transaction of the path, deleted or not, so
// that its sub-resources answer 404 for a transaction never seen.
func (q *queryAPI) transaction(r *http.Request, includeDeleted bool) (domain.Entity, error) {
	return q.Entities.Entity(r.Context(), domain.KindTransaction, pathParam(r, "integrationId"), pathParam(r, "id"), includeDeleted)
}

func (q *queryAPI) getTransaction(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	includeDeleted := p.boolean("includeDeleted")
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	e, err := q.transaction(r, includeDeleted)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{"transaction": viewEntity(e)})
}

// transactionChildren lists kind's entities of one transaction.
func (q *queryAPI) transactionChildren(kind domain.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := entityFilter(r, kind)
		if err != nil {
			writeQueryError(w, err)
			return
		}
		if _, err := q.transaction(r, true); err != nil {
			writeQueryError(w, err)
			return
		}
		f.TransactionID = pathParam(r, "id")
		q.writeEntities(w, r, f)
	}
}

type statusChangeView struct {
	From      string    `json:"fromStatus"`
	To        string    `json:"toStatus"`
	ChangedAt time.Time `json:"changedAt"`
	EventID   string    `json:"eventId"`
}

func (q *queryAPI) statusHistory(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	f := projections.HistoryFilter{
		IntegrationID: pathParam(r, "integrationId"),
		TransactionID: pathParam(r, "id"),
		After:         p.cursor(),
		Limit:         p.limit(),
	}
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	if _, err := q.transaction(r, true); err != nil {
		writeQueryError(w, err)
		return
	}
	page, err := q.Entities.StatusHistory(r.Context(), f)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	views := make([]statusChangeView, len(page.Changes))
	for i, c := range page.Changes {
		views[i] = statusChangeView{From: c.From, To: c.To, ChangedAt: c.At.UTC(), EventID: c.EventID}
	}
	writeData(w, http.StatusOK, map[string]any{"statusHistory": views, "pagination": keyset(f.Limit, page.Total, page.Next)})
}

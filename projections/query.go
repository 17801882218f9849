package projections

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Query errors the API maps to status codes.
var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: a SoftPro event id names events of several
	// integrations; the caller must say which.
	ErrAmbiguous = errors.New("ambiguous event id")
	// ErrNotFailed: a retry was asked for an event that is not FAILED.
	ErrNotFailed = errors.New("event is not FAILED")
	// ErrBadCursor: a page cursor that this version did not issue.
	ErrBadCursor = errors.New("invalid cursor")
)

// EventFilter selects audit rows for the events list. Zero fields do not
// filter. Rows come newest first (received_at, then row id, descending).
type EventFilter struct {
	IntegrationID string
	EventType     domain.EventType
	Status        Status
	// Start and End bound received_at, inclusive; zero is unbounded.
	Start, End time.Time
	// Page is 1-based; Limit is the page size.
	Page, Limit int
}

// EventRow is one audit row with the row's own id.
type EventRow struct {
	// ID is the row's uuid.
	ID string
	AuditRow
}

// EventPage is one page of the events list.
type EventPage struct {
	Events []EventRow
	// Total counts every row matching the filter.
	Total int64
}

// EventRef names one event: by row id, or by SoftPro's event id
// (optionally within one integration).
type EventRef struct {
	// ID is a row uuid or a SoftPro event id.
	ID            string
	IntegrationID string
}

// Sort is the order of an entity list.
type Sort string

// Entity list orders; each is followed by the id, so the order is total.
const (
	SortUpdatedAt   Sort = "updatedAt"
	SortClosingDate Sort = "closingDate"
)

// EntityFilter selects entities of one kind of one integration. Zero
// fields do not filter; filters that do not apply to Kind are ignored.
type EntityFilter struct {
	Kind           domain.Kind
	IntegrationID  string
	TransactionID  string
	IncludeDeleted bool
	// Transactions.
	Status       string
	FileNumber   string
	ClosingFrom  *time.Time
	ClosingTo    *time.Time
	UpdatedSince *time.Time
	// Contacts: Email matches case-insensitively, NamePrefix the start of
	// "first last" or of the last name.
	Email      string
	NamePrefix string
	// Tasks: due strictly before.
	DueBefore *time.Time
	// Sort defaults to SortUpdatedAt (only transactions sort by closing
	// date); Desc reverses it.
	Sort Sort
	Desc bool
	// After continues a walk: the cursor of the previous page's last row.
	After *Cursor
	Limit int
}

// EntityPage is one keyset page.
type EntityPage struct {
	Entities []domain.Entity
	// Total counts every row matching the filter (not only after the
	// cursor).
	Total int64
	// Next is the cursor of the last row when more rows may follow.
	Next *Cursor
}

// HistoryFilter selects one transaction's status changes, oldest first.
type HistoryFilter struct {
	IntegrationID string
	TransactionID string
	After         *Cursor
	Limit         int
}

// Scope is the walk f's cursors belong to: one transaction's history.
func (f HistoryFilter) Scope() string {
	return scope("status-history", f.IntegrationID, f.TransactionID)
}

// HistoryPage is one keyset page of status changes.
type HistoryPage struct {
	Changes []domain.StatusChange
	Total   int64
	Next    *Cursor
}

// Cursor is a position in a keyset walk: the sort key of the last row
// returned and its id. Rows are ordered by (Key, ID), so a walk neither
// repeats nor skips a row that keeps its key while the walk goes on.
// Scope ties the cursor to the walk that issued it (EntityFilter.Scope,
// HistoryFilter.Scope): a store refuses it, with ErrBadCursor, for a list
// of another sort, order or filter, where its key would name another
// position or none.
type Cursor struct {
	Key   string `json:"k"`
	ID    string `json:"i"`
	Scope string `json:"s"`
}

// scope digests the fields that choose a walk's rows and their order: a
// short hash, not a secret (a client can forge any cursor; the store
// parses and checks its key anyway).
func scope(fields ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(fields, "\x00")))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// Scope is the walk f's cursors belong to: its kind, sort, order and
// every filter (not Limit, which may change between pages).
func (f EntityFilter) Scope() string {
	sort := f.Sort
	if sort == "" {
		sort = SortUpdatedAt
	}
	date := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Format(time.DateOnly)
	}
	instant := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return scope("entities", string(f.Kind), f.IntegrationID, f.TransactionID, strconv.FormatBool(f.IncludeDeleted),
		f.Status, f.FileNumber, date(f.ClosingFrom), date(f.ClosingTo), instant(f.UpdatedSince),
		f.Email, f.NamePrefix, instant(f.DueBefore), string(sort), strconv.FormatBool(f.Desc))
}

// Encode renders the cursor as an opaque URL-safe token.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a token made by Cursor.Encode.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: %v", ErrBadCursor, err)
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		return Cursor{}, ErrBadCursor
	}
	return c, nil
}

// StatsFilter selects the events counted by Stats: those received in
// [Start, End), of one integration or all.
type StatsFilter struct {
	IntegrationID string
	Start, End    time.Time
}

// Counts are audit figures of one event type.
type Counts struct {
	EventType domain.EventType
	// Received counts every event; the others count events by their
	// current status.
	Received, Completed, Failed, Skipped int64
	// ProcessingMs sums the processing time of the completed events.
	ProcessingMs int64
}

// InFlight is the number of events neither final nor failed: RECEIVED or
// PROCESSING.
func (c Counts) InFlight() int64 { return c.Received - c.Completed - c.Failed - c.Skipped }

// Total adds up the counts of the event types keep accepts (every type
// when keep is nil).
func Total(counts []Counts, keep func(domain.EventType) bool) Counts {
	var t Counts
	for _, c := range counts {
		if keep != nil && !keep(c.EventType) {
			continue
		}
		t.Received += c.Received
		t.Completed += c.Completed
		t.Failed += c.Failed
		t.Skipped += c.Skipped
		t.ProcessingMs += c.ProcessingMs
	}
	return t
}

// AvgProcessingMs is the mean processing time of the completed events in
// ms, rounded; 0 when none completed.
func (c Counts) AvgProcessingMs() int64 {
	if c.Completed == 0 {
		return 0
	}
	return int64(math.Round(float64(c.ProcessingMs) / float64(c.Completed)))
}

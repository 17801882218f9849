package domain

import (
	"encoding/json"
	"time"
)

// Kind names an entity family of the read models.
type Kind string

// Entity kinds projected from the log.
const (
	KindTransaction Kind = "transaction"
	KindContact     Kind = "contact"
	KindDocument    Kind = "document"
	KindTask        Kind = "task"
)

// Kinds lists every entity kind.
var Kinds = []Kind{KindTransaction, KindContact, KindDocument, KindTask}

// EntityKey identifies one SoftPro record of one integration. SoftPro ids are
// only unique within an integration, so the integration is part of the key.
type EntityKey struct {
	IntegrationID string
	Kind          Kind
	ID            string
}

// Entity is the projected state of one SoftPro record. The common fields
// apply to every kind; of the kind-specific field sets only the one matching
// Key.Kind is meaningful. The zero value (Exists false) is "never seen".
type Entity struct {
	Key EntityKey
	// Exists is false for an entity no event has touched yet.
	Exists bool
	// UpdatedAt is SoftPro's timestamp of the last change applied. An event
	// older than it changes nothing (newest wins).
	UpdatedAt time.Time
	// LastEventID is the event that made the last applied change.
	LastEventID string
	// CreatedAt is SoftPro's timestamp of the first change seen.
	CreatedAt time.Time
	Deleted   bool
	DeletedAt *time.Time
	// Data is the SoftPro record: the top-level fields of every applied
	// event's data, later ones replacing earlier ones.
	Data json.RawMessage

	Transaction TransactionFields
	Contact     ContactFields
	Document    DocumentFields
	Task        TaskFields
}

// TransactionFields are the typed columns of a transaction.
type TransactionFields struct {
	FileNumber      string
	Status          string
	PropertyAddress string
	// ClosingDate is set by closing.scheduled or a closing_date field.
	ClosingDate *time.Time
	// ClosedAt is set by closing.completed.
	ClosedAt *time.Time
}

// ContactFields are the typed columns of a contact.
type ContactFields struct {
	TransactionID string
	FirstName     string
	LastName      string
	Email         string
	Phone         string
	Role          string
}

// DocumentFields are the typed columns of a document.
type DocumentFields struct {
	TransactionID string
	Name          string
	DocumentType  string
	URL           string
}

// TaskFields are the typed columns of a task.
type TaskFields struct {
	TransactionID string
	Title         string
	Status        string
	AssignedTo    string
	DueDate       *time.Time
	CompletedAt   *time.Time
}

// StatusChange is one entry of a transaction's status history.
type StatusChange struct {
	Key     EntityKey
	From    string
	To      string
	At      time.Time
	EventID string
}

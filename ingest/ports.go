package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// ErrRecordTooLarge marks an append the log refuses for the record's size.
var ErrRecordTooLarge = errors.New("record too large for the event log")

// Position is where an appended event lives on the log.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Appender appends an envelope to the log and returns only once the broker
// has acknowledged it with acks=all. An error means the event is not on the
// log as far as the caller can know; one wrapping ErrRecordTooLarge means
// the log refuses the record for its size, and always will.
type Appender interface {
	Append(ctx context.Context, e domain.Envelope) (Position, error)
}

// Admission is the gate's answer for one verified webhook.
type Admission struct {
	// Allowed is false when the integration's token bucket is empty.
	Allowed bool
	// RetryAfter is how long until a token is available, when not allowed.
	RetryAfter time.Duration
	// Duplicate is true when the event id was seen within the dedup TTL.
	Duplicate bool
	// InFlight is true when another delivery of the event holds a pending
	// fingerprint (see Confirmer): its append is under way and may still
	// fail, so the event is not known to be on the log.
	InFlight bool
}

// Ticket names one admission: the integration's bucket and the event's
// dedup fingerprint.
type Ticket struct {
	IntegrationID string
	EventID       string
	// Limit is the number of webhooks allowed per Window.
	Limit  int
	Window time.Duration
	// DedupTTL is how long the fingerprint is kept.
	DedupTTL time.Duration
	// PendingTTL, when set, makes a new fingerprint pending: it lives
	// PendingTTL until Confirm turns it into a kept one, and other
	// deliveries of the event meanwhile see InFlight, not Duplicate. It
	// must outlast the append. Zero sets a kept fingerprint at once.
	PendingTTL time.Duration
	// NoToken takes no token from the bucket: the caller already took one
	// for this delivery and is checking the fingerprint again.
	NoToken bool
}

// Gate rate-limits and de-duplicates verified webhooks in one round trip:
// it takes a token from the integration's bucket and, only if one was
// available, sets the event's fingerprint if absent. Release removes the
// fingerprint again when the append failed, so the sender's retry is
// accepted. Implementations are safe for concurrent use.
type Gate interface {
	Admit(ctx context.Context, t Ticket) (Admission, error)
	Release(ctx context.Context, integrationID, eventID string) error
}

// Confirmer is implemented by a Gate whose fingerprints can be pending
// (Ticket.PendingTTL): Confirm keeps the event's fingerprint for
// t.DedupTTL once the event is on the log. Until then a redelivery is not
// answered as a duplicate, and a fingerprint whose append never ended
// (the process died) expires after PendingTTL instead of hiding the event
// for DedupTTL.
type Confirmer interface {
	Confirm(ctx context.Context, t Ticket) error
}

// IntegrationSource looks an integration up by id; it returns an error
// wrapping domain.ErrNotFound when there is none.
type IntegrationSource interface {
	Integration(ctx context.Context, id string) (domain.Integration, error)
}

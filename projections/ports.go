package projections

import (
	"context"
	"encoding/json"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Store is where the read models live. Implementations are safe for
// concurrent use; each InTx call is its own transaction.
type Store interface {
	// InTx runs fn in one transaction, committing when fn returns nil and
	// rolling back otherwise. Errors caused by the database being
	// unreachable or overloaded wrap ErrUnavailable.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Tx is one read-model transaction.
type Tx interface {
	// Load returns, locked for update until the transaction ends, the
	// checkpoints, audit rows and entities q names. Missing rows are absent
	// from the maps.
	Load(ctx context.Context, q Query) (Snapshot, error)
	// Save writes w. A checkpoint whose stored offset is no longer its
	// Prev fails the save with ErrCheckpointMoved.
	Save(ctx context.Context, w Writes) error
}

// Partition names one partition of one topic.
type Partition struct {
	Topic     string
	Partition int32
}

// EventKey identifies one SoftPro event of one integration.
type EventKey struct {
	IntegrationID string
	EventID       string
}

// Query names the rows a batch of records reads.
type Query struct {
	Projection string
	// Names, when set, maps topics to the projection their partitions'
	// checkpoints are kept under, in place of Projection.
	Names      map[string]string
	Partitions []Partition
	Events     []EventKey
	Entities   []domain.EntityKey
	// Unlocked reads the audit and entity rows without locking them
	// (checkpoints are locked all the same). Only a writer that no other
	// transaction can race on those rows sets it: a rebuild, whose fresh
	// schema nothing else writes and whose workers each own a set of
	// integrations (every row belongs to one).
	Unlocked bool
}

// Snapshot is what Load found.
type Snapshot struct {
	// Checkpoints holds each partition's next offset to apply.
	Checkpoints map[Partition]int64
	Audit       map[EventKey]AuditRow
	Entities    map[domain.EntityKey]domain.Entity
	// LastChanges holds, for rows of Entities, where the event that last
	// changed the row came from; absent when the store does not tell.
	LastChanges map[domain.EntityKey]LastChange
}

// LastChange is the topic of the event that last changed a row, when its
// first record was appended to the log (zero when the store does not know)
// and when ingest received it (its audit row's received_at, which precedes
// the append).
type LastChange struct {
	Topic      string
	AppendedAt time.Time
	ReceivedAt time.Time
}

// Status is an audit row's lifecycle state, a wire contract of the API.
type Status string

// Audit lifecycle: RECEIVED → PROCESSING → COMPLETED or FAILED; events of
// types that change no entity are SKIPPED.
const (
	StatusReceived   Status = "RECEIVED"
	StatusProcessing Status = "PROCESSING"
	StatusCompleted  Status = "COMPLETED"
	StatusFailed     Status = "FAILED"
	StatusSkipped    Status = "SKIPPED"
)

// Final reports whether no further processing will change the status.
func (s Status) Final() bool { return s == StatusCompleted || s == StatusSkipped }

// AuditRow is one row of the webhook_events read model.
type AuditRow struct {
	IntegrationID       string
	EventID             string
	EventType           domain.EventType
	Payload             json.RawMessage
	Headers             json.RawMessage
	Status              Status
	ReceivedAt          time.Time
	ProcessingStartedAt *time.Time
	ProcessedAt         *time.Time
	FailedAt            *time.Time
	ProcessingTimeMs    *int64
	RetryCount          int
	LastRetryAt         *time.Time
	Error               string
	OccurredAt          time.Time
	// Applied is nil for events that concern no entity.
	Applied   *bool
	Source    domain.Source
	Topic     string
	Partition int32
	Offset    int64
	// AppendedAt is the record's log timestamp (nil when unknown); an
	// event's audit row keeps its first record's.
	AppendedAt *time.Time
	// New is set when the writer's transaction found no stored row for the
	// event (and so counts it as received): the store inserts it without a
	// conflict check, and a row another writer inserted meanwhile fails the
	// transaction, which is then planned again, instead of being
	// overwritten and the event counted twice.
	New bool
}

// Checkpoint is a partition's next offset to apply, advanced from Prev
// (-1 when there was none) to Next.
type Checkpoint struct {
	Projection string
	Partition
	Prev int64
	Next int64
}

// MetricsDelta is added to one integration_metrics_hourly row. Counts may be
// negative (a failed event completed by a manual retry moves buckets).
type MetricsDelta struct {
	IntegrationID   string
	EventType       domain.EventType
	Hour            time.Time
	Received        int64
	Completed       int64
	Failed          int64
	Skipped         int64
	ProcessingMs    int64
	MaxProcessingMs int64
	// LatencyBuckets has len(LatencyBucketsMs)+1 entries or none.
	LatencyBuckets []int64
}

// Writes is everything a batch changes.
type Writes struct {
	Checkpoints []Checkpoint
	Audit       []AuditRow
	Entities    []domain.Entity
	// NewEntities marks the entries of Entities the projector found no
	// stored row for (when set, it has one entry per entity): the store may
	// insert them without a conflict check, as AuditRow.New.
	NewEntities []bool
	// DataInAudit marks the entries of Entities whose data is their last
	// event's data as it came (domain.Effect.DataAsCarried); that event's
	// audit row is among Audit. The store may take such an entity's data
	// from the stored payload instead of sending it again. When set, it
	// has one entry per entity.
	DataInAudit []bool
	// Overwrite marks the entries of Entities the store writes over the
	// stored row whatever that holds (a newer softpro_updated_at included):
	// whole folds from the log of rows the transaction locked (a refold
	// settling). Other entries never replace a newer stored state. When
	// set, it has one entry per entity.
	Overwrite     []bool
	StatusChanges []domain.StatusChange
	// ReplaceHistory names transactions whose stored status changes are
	// deleted before StatusChanges are written: their whole history is
	// among StatusChanges (a refold).
	ReplaceHistory []domain.EntityKey
	Metrics        []MetricsDelta
	// Recount names hourly metrics rows the store sets, once everything
	// else is written, from the audit rows they count (every writer adds
	// to them meanwhile as before). A replay recounts the rows of the
	// audit rows it restores instead of adding to them: an audit row
	// deleted behind the system's back was counted once already.
	Recount []MetricsRow
}

// MetricsRow names one integration_metrics_hourly row: its counts are
// those of the audit rows of that integration and type received in the
// hour starting at Hour (UTC).
type MetricsRow struct {
	IntegrationID string
	EventType     domain.EventType
	Hour          time.Time
}

// Empty reports whether w writes nothing.
func (w Writes) Empty() bool {
	return len(w.Checkpoints) == 0 && len(w.Audit) == 0 && len(w.Entities) == 0 &&
		len(w.StatusChanges) == 0 && len(w.ReplaceHistory) == 0 && len(w.Metrics) == 0 && len(w.Recount) == 0
}

// Package domain holds the vocabulary of softprohub: the event envelope that
// is appended to the log, the SoftPro event types with their priorities and
// topic routing, and the integration settings that decide how a webhook is
// verified.
package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	// The hot path of a rebuild reads every record of the log: the
	// envelope's head and the payload's validity go through
	// segmentio/encoding, a drop-in for encoding/json that is several
	// times faster on both.
	segjson "github.com/segmentio/encoding/json"
)

// EventType is SoftPro's event type string, a wire contract.
type EventType string

// The SoftPro webhook event types of the original specification.
const (
	TransactionCreated       EventType = "transaction.created"
	TransactionUpdated       EventType = "transaction.updated"
	TransactionStatusChanged EventType = "transaction.status_changed"
	DocumentUploaded         EventType = "document.uploaded"
	DocumentUpdated          EventType = "document.updated"
	DocumentDeleted          EventType = "document.deleted"
	ContactCreated           EventType = "contact.created"
	ContactUpdated           EventType = "contact.updated"
	ContactDeleted           EventType = "contact.deleted"
	ClosingScheduled         EventType = "closing.scheduled"
	ClosingCompleted         EventType = "closing.completed"
	TaskCreated              EventType = "task.created"
	TaskCompleted            EventType = "task.completed"
)

// Record types appended by scheduled syncs: one snapshot of an entity as the
// SoftPro API returned it.
const (
	TransactionSynced EventType = "transaction.synced"
	ContactSynced     EventType = "contact.synced"
	DocumentSynced    EventType = "document.synced"
	TaskSynced        EventType = "task.synced"
)

// SyncRecord reports whether t is the type of a record pulled by a sync
// (transaction.synced, …): one SoftPro API record, appended to TopicSync by
// a sync job, never sent as a webhook. Such a record's payload may be the
// bare record, without the webhook's "data".
func (t EventType) SyncRecord() bool {
	return t.Topic() == TopicSync
}

// WebhookTypes lists every webhook event type SoftPro sends, in spec order.
var WebhookTypes = []EventType{
	TransactionCreated, TransactionUpdated, TransactionStatusChanged,
	DocumentUploaded, DocumentUpdated, DocumentDeleted,
	ContactCreated, ContactUpdated, ContactDeleted,
	ClosingScheduled, ClosingCompleted,
	TaskCreated, TaskCompleted,
}

// Topic names of the event log, one per aggregate family. They are wire
// contracts: renaming one orphans every event already in it.
const (
	TopicTransactions = "softpro.transactions.v1"
	TopicDocuments    = "softpro.documents.v1"
	TopicTasks        = "softpro.tasks.v1"
	TopicContacts     = "softpro.contacts.v1"
	TopicSync         = "softpro.sync.v1"
	TopicOther        = "softpro.other.v1"
	TopicPoison       = "softpro.poison.v1"
)

// EventTopics are the topics that hold domain events, in priority order.
var EventTopics = []string{TopicTransactions, TopicDocuments, TopicTasks, TopicContacts, TopicSync, TopicOther}

// AllTopics are every topic the service creates.
var AllTopics = append(append([]string(nil), EventTopics...), TopicPoison)

// Priority is the original system's 1 (highest) to 5 (lowest) job priority.
// On the log it is carried for reporting; isolation between priorities comes
// from each family having its own topic and consumer group.
type Priority int

// route is where an event type goes and how urgent it is.
type route struct {
	topic    string
	priority Priority
}

var routes = map[EventType]route{
	TransactionStatusChanged: {TopicTransactions, 1},
	ClosingScheduled:         {TopicTransactions, 1},
	ClosingCompleted:         {TopicTransactions, 1},
	TransactionCreated:       {TopicTransactions, 2},
	TransactionUpdated:       {TopicTransactions, 2},
	DocumentUploaded:         {TopicDocuments, 3},
	DocumentUpdated:          {TopicDocuments, 3},
	DocumentDeleted:          {TopicDocuments, 3},
	TaskCreated:              {TopicTasks, 3},
	TaskCompleted:            {TopicTasks, 3},
	ContactCreated:           {TopicContacts, 4},
	ContactUpdated:           {TopicContacts, 4},
	ContactDeleted:           {TopicContacts, 4},
	TransactionSynced:        {TopicSync, 5},
	ContactSynced:            {TopicSync, 5},
	DocumentSynced:           {TopicSync, 5},
	TaskSynced:               {TopicSync, 5},
}

// Known reports whether t is an event type softprohub knows how to project.
func (t EventType) Known() bool {
	_, ok := routes[t]
	return ok
}

// Topic is the log topic for events of type t. Unknown types go to
// TopicOther: they are kept, never dropped.
func (t EventType) Topic() string {
	if r, ok := routes[t]; ok {
		return r.topic
	}
	return TopicOther
}

// Priority is the original system's priority for events of type t; unknown
// types get the lowest.
func (t EventType) Priority() Priority {
	if r, ok := routes[t]; ok {
		return r.priority
	}
	return 5
}

// Entity is the family part of the type: "transaction" for
// "transaction.updated".
func (t EventType) Entity() string {
	s := string(t)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// Source says how an event entered the log.
type Source string

// Sources of events.
const (
	SourceWebhook Source = "webhook"
	SourceSync    Source = "sync"
	SourceRetry   Source = "retry"
	SourceReplay  Source = "replay"
	SourceManual  Source = "manual"
)

// SchemaV1 is the envelope schema written by this version.
const SchemaV1 = "softprohub.event.v1"

// Header names repeated on every record for cheap filtering.
const (
	HeaderType    = "type"
	HeaderEventID = "event-id"
	HeaderSchema  = "schema"
)

// Envelope is one immutable domain event as it is stored on the log. Payload
// holds SoftPro's JSON byte for byte.
type Envelope struct {
	Schema          string          `json:"schema"`
	EventID         string          `json:"eventId"`
	IntegrationID   string          `json:"integrationId"`
	Type            EventType       `json:"type"`
	OccurredAt      time.Time       `json:"occurredAt"`
	ReceivedAt      time.Time       `json:"receivedAt"`
	Source          Source          `json:"source"`
	Priority        Priority        `json:"priority"`
	SignatureScheme SignatureScheme `json:"signatureScheme,omitempty"`
	KeyID           string          `json:"keyId,omitempty"`
	CorrelationID   string          `json:"correlationId,omitempty"`
	// Attempt counts manual retries: 0 for the first append.
	Attempt int             `json:"attempt,omitempty"`
	Payload json.RawMessage `json:"payload"`
}

// envelopeHead is Envelope without its payload, so Encode can splice the
// payload in untouched (encoding/json would compact it).
type envelopeHead struct {
	Schema          string          `json:"schema"`
	EventID         string          `json:"eventId"`
	IntegrationID   string          `json:"integrationId"`
	Type            EventType       `json:"type"`
	OccurredAt      time.Time       `json:"occurredAt"`
	ReceivedAt      time.Time       `json:"receivedAt"`
	Source          Source          `json:"source"`
	Priority        Priority        `json:"priority"`
	SignatureScheme SignatureScheme `json:"signatureScheme,omitempty"`
	KeyID           string          `json:"keyId,omitempty"`
	CorrelationID   string          `json:"correlationId,omitempty"`
	Attempt         int             `json:"attempt,omitempty"`
}

// ErrInvalidEnvelope marks a record value that is not a decodable envelope.
var ErrInvalidEnvelope = errors.New("invalid envelope")

// Encode renders the envelope as the record value. The payload bytes are
// copied verbatim.
func (e Envelope) Encode() ([]byte, error) {
	if len(e.Payload) == 0 || !json.Valid(e.Payload) {
		return nil, fmt.Errorf("encode envelope %s: %w: payload is not JSON", e.EventID, ErrInvalidEnvelope)
	}
	head, err := json.Marshal(envelopeHead{
		Schema: e.Schema, EventID: e.EventID, IntegrationID: e.IntegrationID, Type: e.Type,
		OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt, Source: e.Source, Priority: e.Priority,
		SignatureScheme: e.SignatureScheme, KeyID: e.KeyID, CorrelationID: e.CorrelationID, Attempt: e.Attempt,
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", e.EventID, err)
	}
	var b bytes.Buffer
	b.Grow(len(head) + len(e.Payload) + 12)
	b.Write(head[:len(head)-1])
	b.WriteString(`,"payload":`)
	b.Write(e.Payload)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// DecodeEnvelope parses a record value written by Encode. The payload keeps
// its bytes, except for the few that PostgreSQL cannot store (see storable).
func DecodeEnvelope(value []byte) (Envelope, error) {
	var e Envelope
	if !decodeEncoded(value, &e) {
		e = Envelope{}
		if err := json.Unmarshal(value, &e); err != nil {
			return Envelope{}, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
		}
		// encoding/json trims white space around a RawMessage; keep the
		// payload's bytes when it is last, as Encode writes it.
		if i := bytes.Index(value, payloadKey); i >= 0 && len(value) > 0 && value[len(value)-1] == '}' {
			raw := value[i+len(payloadKey) : len(value)-1]
			if len(raw) != len(e.Payload) && bytes.Equal(bytes.TrimSpace(raw), e.Payload) {
				e.Payload = append(json.RawMessage(nil), raw...)
			}
		}
	}
	if e.Schema != SchemaV1 {
		return Envelope{}, fmt.Errorf("%w: unsupported schema %q", ErrInvalidEnvelope, e.Schema)
	}
	if e.EventID == "" || e.IntegrationID == "" || e.Type == "" {
		return Envelope{}, fmt.Errorf("%w: eventId, integrationId and type are required", ErrInvalidEnvelope)
	}
	e.Payload = storable(e.Payload)
	return e, nil
}

// decodeEncoded decodes value laid out as Encode writes it, the payload last
// after the first `,"payload":` (which cannot occur unescaped inside the
// head's strings): the payload is checked once and kept as it is rather
// than decoded and cut out again, which for a typical webhook is most of the
// work. It reports false for any other layout, for DecodeEnvelope to decode
// in full: if the first `,"payload":` were not the head's last key, the
// bytes after it would not be one JSON value.
func decodeEncoded(value []byte, e *Envelope) bool {
	i := bytes.Index(value, payloadKey)
	if i < 0 || value[len(value)-1] != '}' {
		return false
	}
	raw := value[i+len(payloadKey) : len(value)-1]
	if !segjson.Valid(raw) {
		return false
	}
	head := make([]byte, i+1)
	copy(head, value[:i])
	head[i] = '}'
	if err := segjson.Unmarshal(head, e); err != nil || e.Payload != nil {
		return false
	}
	e.Payload = append(json.RawMessage(nil), raw...)
	return true
}

var payloadKey = []byte(`,"payload":`)

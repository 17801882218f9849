package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	// Payloads are parsed once by valyala/fastjson into a reusable tree,
	// and the data object's fields are cut from it; other JSON values are
	// read with goccy/go-json, a drop-in for encoding/json's Unmarshal that
	// parses in one pass. Payload parsing was a quarter of the CPU of a
	// rebuild. Envelopes are validated when decoded (DecodeEnvelope) and
	// encoded (Encode), so payloads reaching ChangeOf are known to be JSON.
	gojson "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

var parsers fastjson.ParserPool

// members renders o as JSON (in one buffer of about size bytes) and
// returns it with each field's value cut from it.
func members(o *fastjson.Object, size int) (json.RawMessage, map[string]json.RawMessage) {
	type span struct {
		key    string
		lo, hi int
	}
	spans := make([]span, 0, o.Len())
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	o.Visit(func(k []byte, v *fastjson.Value) {
		if len(spans) > 0 {
			buf = append(buf, ',')
		}
		key := string(k)
		buf = appendKey(buf, key)
		buf = append(buf, ':')
		lo := len(buf)
		buf = v.MarshalTo(buf)
		spans = append(spans, span{key, lo, len(buf)})
	})
	buf = append(buf, '}')
	out := make(map[string]json.RawMessage, len(spans))
	for _, s := range spans {
		out[s.key] = buf[s.lo:s.hi:s.hi]
	}
	return buf, out
}

// ErrUnprojectable marks an event whose payload can never be projected:
// retrying it cannot help.
var ErrUnprojectable = errors.New("unprojectable event")

// MaxIndexedBytes bounds an entity's id and each of the fields the read
// models index (indexedFields), in bytes of text. A B-tree entry holds at
// most about 2,700 bytes; the widest index pairs two such fields with the
// integration id (at most 128 bytes), and lower() may lengthen a few
// characters. An event carrying a longer one is unprojectable: the live
// path would have the database refuse it, and a rebuild, which builds the
// indexes after loading, would fail at its end.
const MaxIndexedBytes = 1000

// indexedFields are, per kind, the data fields Apply copies into indexed
// columns, each as the keys it reads them from (first present wins).
var indexedFields = map[Kind][][]string{
	KindTransaction: {{"file_number", "fileNumber"}, {"status", "new_status", "newStatus"}},
	KindContact:     {{"transaction_id", "transactionId"}, {"first_name", "firstName"}, {"last_name", "lastName"}, {"email"}},
	KindDocument:    {{"transaction_id", "transactionId"}},
	KindTask:        {{"transaction_id", "transactionId"}, {"status"}},
}

// Op is what an event does to the entity it concerns.
type Op int

// Operations on entities.
const (
	// OpUpsert creates or updates the entity from the event's data.
	OpUpsert Op = iota + 1
	// OpDelete soft-deletes the entity.
	OpDelete
	// OpStatusChange sets a transaction's status.
	OpStatusChange
	// OpClosingScheduled sets a transaction's closing date.
	OpClosingScheduled
	// OpClosingCompleted marks a transaction closed.
	OpClosingCompleted
	// OpTaskCompleted marks a task complete.
	OpTaskCompleted
)

type effect struct {
	kind Kind
	op   Op
}

// KindOf is the kind of entity events of type t change; ok is false for
// types that change none.
func KindOf(t EventType) (k Kind, ok bool) {
	e, ok := effects[t]
	return e.kind, ok
}

var effects = map[EventType]effect{
	TransactionCreated:       {KindTransaction, OpUpsert},
	TransactionUpdated:       {KindTransaction, OpUpsert},
	TransactionSynced:        {KindTransaction, OpUpsert},
	TransactionStatusChanged: {KindTransaction, OpStatusChange},
	ClosingScheduled:         {KindTransaction, OpClosingScheduled},
	ClosingCompleted:         {KindTransaction, OpClosingCompleted},
	DocumentUploaded:         {KindDocument, OpUpsert},
	DocumentUpdated:          {KindDocument, OpUpsert},
	DocumentSynced:           {KindDocument, OpUpsert},
	DocumentDeleted:          {KindDocument, OpDelete},
	ContactCreated:           {KindContact, OpUpsert},
	ContactUpdated:           {KindContact, OpUpsert},
	ContactSynced:            {KindContact, OpUpsert},
	ContactDeleted:           {KindContact, OpDelete},
	TaskCreated:              {KindTask, OpUpsert},
	TaskSynced:               {KindTask, OpUpsert},
	TaskCompleted:            {KindTask, OpTaskCompleted},
}

// Projectable reports whether events of type t change an entity. Events of
// other types are kept in the audit only.
func (t EventType) Projectable() bool {
	_, ok := effects[t]
	return ok
}

// Change is what one event says about one entity, read from its payload.
type Change struct {
	Key     EntityKey
	Op      Op
	Type    EventType
	EventID string
	// At is SoftPro's timestamp of the change: the envelope's OccurredAt.
	At time.Time
	// Data is the event's data object, field by field.
	Data map[string]json.RawMessage
	// Raw is the data object's bytes.
	Raw json.RawMessage
}

// ChangeOf reads the change an event makes. It returns ok false, and no
// error, for event types that change no entity. A payload that is not an
// object, is nested deeper than MaxPayloadDepth, or has no data object or
// entity id is an error wrapping ErrUnprojectable.
//
// The data object is the payload's "data" field (webhooks, and sync records
// that keep the webhook shape) or, for a record pulled by a sync (a type
// whose SyncRecord is true) when there is none, the payload itself (bare
// API records). An event of a webhook type without "data" is
// unprojectable: its payload's id is the event's, not an entity's.
func ChangeOf(e Envelope) (c Change, ok bool, err error) {
	eff, known := effects[e.Type]
	if !known {
		return Change{}, false, nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	top, perr := p.ParseBytes(e.Payload)
	if perr != nil && TooDeep(e.Payload) {
		return Change{}, false, fmt.Errorf("%w: %s %s: payload is nested deeper than %d levels", ErrUnprojectable, e.Type, e.EventID, MaxPayloadDepth)
	}
	if perr != nil || top.Type() != fastjson.TypeObject {
		return Change{}, false, fmt.Errorf("%w: %s %s: payload is not a JSON object", ErrUnprojectable, e.Type, e.EventID)
	}
	obj := top.GetObject()
	raw := json.RawMessage(e.Payload)
	var d *fastjson.Value
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if string(k) == "data" {
			d = v // the last one, as encoding/json keeps
		}
	})
	if d == nil && !e.Type.SyncRecord() {
		// A webhook carries its entity in "data"; its own id, type and
		// timestamp are the event's, not an entity's.
		return Change{}, false, fmt.Errorf("%w: %s %s: payload has no data object", ErrUnprojectable, e.Type, e.EventID)
	}
	if d != nil {
		if d.Type() != fastjson.TypeObject {
			return Change{}, false, fmt.Errorf("%w: %s %s: data is not a JSON object", ErrUnprojectable, e.Type, e.EventID)
		}
		obj = d.GetObject()
	}
	object, data := members(obj, len(e.Payload))
	if d != nil {
		raw = object
	}
	var id string
	if eff.op == OpClosingScheduled || eff.op == OpClosingCompleted {
		id = text(data, "transaction_id", "transactionId")
	}
	if id == "" {
		id = text(data, "id")
	}
	if id == "" {
		return Change{}, false, fmt.Errorf("%w: %s %s: data has no %s id", ErrUnprojectable, e.Type, e.EventID, eff.kind)
	}
	if len(id) > MaxIndexedBytes {
		return Change{}, false, fmt.Errorf("%w: %s %s: data's %s id is longer than %d bytes, more than the read models can index",
			ErrUnprojectable, e.Type, e.EventID, eff.kind, MaxIndexedBytes)
	}
	for _, keys := range indexedFields[eff.kind] {
		if k, v := first(data, keys...); len(v) > MaxIndexedBytes {
			return Change{}, false, fmt.Errorf("%w: %s %s: data.%s is longer than %d bytes, more than the read models can index",
				ErrUnprojectable, e.Type, e.EventID, k, MaxIndexedBytes)
		}
	}
	at := e.OccurredAt
	if at.IsZero() {
		at = e.ReceivedAt
	}
	return Change{
		Key:     EntityKey{IntegrationID: e.IntegrationID, Kind: eff.kind, ID: id},
		Op:      eff.op,
		Type:    e.Type,
		EventID: e.EventID,
		// To the microsecond, as the read models keep it: a change must
		// compare with a row reloaded from them as with the state it left.
		At:   at.UTC().Truncate(time.Microsecond),
		Data: data,
		Raw:  raw,
	}, true, nil
}

// Applies reports whether Apply applies c to cur, which depends only on
// cur's Exists, UpdatedAt and Deleted: newest wins, ties apply, but a tie
// never resurrects (only a newer change clears a delete).
func Applies(cur Entity, c Change) bool {
	switch {
	case cur.Exists && c.At.Before(cur.UpdatedAt):
		return false
	case cur.Deleted && c.Op != OpDelete && !c.At.After(cur.UpdatedAt):
		return false
	}
	return true
}

// Effect is what Apply did.
type Effect struct {
	// Applied is false when the change is older than the entity's state and
	// so changed nothing.
	Applied bool
	// DataAsCarried is set when the new state's data is the change's data
	// object as the event carried it (the payload's "data", or a sync
	// record's payload itself when it has none), not merged with earlier
	// data: the entity was created by this change. A store may then take the data from the
	// event's stored payload instead of receiving it a second time.
	DataAsCarried bool
	// StatusChange is set when a transaction's status changed.
	StatusChange *StatusChange
	// Earlier is set when a change too old to apply is older than the
	// entity's creation: only CreatedAt moved back, to the change's time.
	Earlier bool
}

// Apply folds a change into the entity's current state and returns the new
// state. It is pure: cur is not modified.
//
// Rules:
//   - Newest wins: a change older than cur.UpdatedAt is not applied. Changes
//     with equal timestamps apply in log order (SoftPro timestamps have
//     second precision, so a create and an update often tie).
//   - The creation time is the earliest change's: one too old to apply but
//     older than the creation moves CreatedAt back (Effect.Earlier), so an
//     entity whose events are projected from two topics in either order
//     (webhooks and a sync's snapshots) gets the same creation time.
//   - Deletes are soft: the entity is marked deleted and kept, so an older
//     event arriving late cannot resurrect it, nor one of the delete's own
//     second (ties do not apply over a delete). A newer change clears the
//     mark.
//   - Typed fields change only when the event carries them; the data jsonb
//     keeps the union of top-level fields, newest value per field. Closing
//     events keep their data under "closing", as their ids are not the
//     transaction's; one that names its transaction (transaction_id) sets
//     only the transaction's closing date and closed-at, as its status and
//     other fields are the closing's.
//   - A transaction's status change is recorded whenever the status differs
//     from the previous one, and for every transaction.status_changed.
func Apply(cur Entity, c Change) (Entity, Effect) {
	if !Applies(cur, c) {
		if cur.Exists && c.At.Before(cur.CreatedAt) {
			next := cur
			next.CreatedAt = c.At
			return next, Effect{Earlier: true}
		}
		return cur, Effect{}
	}
	next := cur
	next.Key = c.Key
	if !cur.Exists {
		next.Exists = true
		next.CreatedAt = c.At
	}
	next.UpdatedAt = c.At
	next.LastEventID = c.EventID
	if c.Op == OpDelete {
		next.Deleted = true
		at := c.At
		next.DeletedAt = &at
	} else {
		next.Deleted = false
		next.DeletedAt = nil
	}
	var eff Effect
	eff.Applied = true
	d := c.Data
	// A closing event naming its transaction carries the closing's own
	// data (its status is the closing's): it is kept under "closing", and
	// only its dates are the transaction's. Without transaction_id, the
	// data is the transaction's own, all fields applying.
	closing := c.Op == OpClosingScheduled || c.Op == OpClosingCompleted
	closingsOwn := closing && text(d, "transaction_id", "transactionId") != ""
	if closingsOwn {
		next.Data, _ = mergeData(cur.Data, map[string]json.RawMessage{"closing": c.Raw}, nil)
	} else {
		next.Data, eff.DataAsCarried = mergeData(cur.Data, c.Data, c.Raw)
	}
	switch c.Key.Kind {
	case KindTransaction:
		t := &next.Transaction
		if !closingsOwn {
			setText(&t.FileNumber, d, "file_number", "fileNumber")
			setText(&t.Status, d, "status", "new_status", "newStatus")
			if obj, ok := d["property"]; ok {
				var p map[string]json.RawMessage
				if gojson.Unmarshal(obj, &p) == nil && p != nil {
					setText(&t.PropertyAddress, p, "address")
				} else {
					setText(&t.PropertyAddress, d, "property")
				}
			}
			setText(&t.PropertyAddress, d, "property_address", "propertyAddress")
		}
		switch c.Op {
		case OpClosingScheduled:
			setDate(&t.ClosingDate, d, "closing_date", "closingDate", "scheduled_date", "scheduled_at", "date")
		case OpClosingCompleted:
			// Completed at the time it names, else at the event's: never
			// without one.
			at := c.At
			t.ClosedAt = &at
			setTimeIfAny(&t.ClosedAt, d, "closed_at", "closedAt", "completed_at", "completedAt")
			setDate(&t.ClosingDate, d, "closing_date", "closingDate")
		default:
			setDate(&t.ClosingDate, d, "closing_date", "closingDate")
		}
		from := cur.Transaction.Status
		if from == "" {
			from = text(d, "previous_status", "previousStatus", "old_status", "oldStatus", "from")
		}
		differs := t.Status != cur.Transaction.Status && cur.Transaction.Status != ""
		if t.Status != "" && (differs || c.Op == OpStatusChange) {
			eff.StatusChange = &StatusChange{Key: c.Key, From: from, To: t.Status, At: c.At, EventID: c.EventID}
		}
	case KindContact:
		f := &next.Contact
		setText(&f.TransactionID, d, "transaction_id", "transactionId")
		setText(&f.FirstName, d, "first_name", "firstName")
		setText(&f.LastName, d, "last_name", "lastName")
		setText(&f.Email, d, "email")
		setText(&f.Phone, d, "phone")
		setText(&f.Role, d, "role")
	case KindDocument:
		f := &next.Document
		setText(&f.TransactionID, d, "transaction_id", "transactionId")
		setText(&f.Name, d, "name", "file_name", "fileName", "filename")
		setText(&f.DocumentType, d, "document_type", "documentType", "type")
		setText(&f.URL, d, "url")
	case KindTask:
		f := &next.Task
		setText(&f.TransactionID, d, "transaction_id", "transactionId")
		setText(&f.Title, d, "title", "name")
		setText(&f.Status, d, "status")
		setText(&f.AssignedTo, d, "assigned_to", "assignedTo", "assignee")
		setTime(&f.DueDate, d, "due_date", "dueDate")
		if c.Op == OpTaskCompleted {
			if _, has := d["status"]; !has {
				f.Status = "completed"
			}
			at := c.At
			f.CompletedAt = &at
			setTimeIfAny(&f.CompletedAt, d, "completed_at", "completedAt")
		} else {
			setTime(&f.CompletedAt, d, "completed_at", "completedAt")
		}
	}
	return next, eff
}

// text returns the first of keys present in d as text: strings as they are,
// numbers and booleans in their JSON form, null and objects as "".
func text(d map[string]json.RawMessage, keys ...string) string {
	_, v := first(d, keys...)
	return v
}

// first returns the first of keys present in d and its value as text.
func first(d map[string]json.RawMessage, keys ...string) (key, value string) {
	for _, k := range keys {
		if raw, ok := d[k]; ok {
			return k, rawText(raw)
		}
	}
	return "", ""
}

func rawText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return string(raw[1 : len(raw)-1]) // nothing to unescape
		}
		var s string
		if gojson.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	case 'n', '{', '[':
		return ""
	default:
		return string(raw)
	}
}

// setText overwrites *dst with the first of keys present in d.
func setText(dst *string, d map[string]json.RawMessage, keys ...string) {
	for _, k := range keys {
		if raw, ok := d[k]; ok {
			*dst = rawText(raw)
			return
		}
	}
}

// setTime overwrites *dst with the first of keys present in d: null clears
// it, a timestamp or date sets it, anything else leaves it (the value stays
// in the data jsonb).
func setTime(dst **time.Time, d map[string]json.RawMessage, keys ...string) {
	setParsed(dst, d, parseTime, keys...)
}

// setParsed is setTime reading the value with parse.
func setParsed(dst **time.Time, d map[string]json.RawMessage, parse func(string) (time.Time, bool), keys ...string) {
	for _, k := range keys {
		raw, ok := d[k]
		if !ok {
			continue
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			*dst = nil
			return
		}
		if t, ok := parse(rawText(raw)); ok {
			*dst = &t
		}
		return
	}
}

// setTimeIfAny is setTime for a field that must keep a time: a null, or
// anything not a time, leaves *dst.
func setTimeIfAny(dst **time.Time, d map[string]json.RawMessage, keys ...string) {
	if _, raw := first(d, keys...); raw != "" {
		if t, ok := parseTime(raw); ok {
			*dst = &t
		}
	}
}

// setDate is setTime for a date column: the day is the one the value
// names, in its own offset (2024-02-01T19:30:00-05:00 is February 1st,
// not the 2nd it is in UTC), kept as midnight UTC.
func setDate(dst **time.Time, d map[string]json.RawMessage, keys ...string) {
	setParsed(dst, d, parseDate, keys...)
}

// parseDate reads s as parseTime does and keeps the day it names in its
// own offset, as midnight UTC.
func parseDate(s string) (time.Time, bool) {
	t, ok := parseTimeInZone(s)
	if !ok {
		return time.Time{}, false
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), true
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", time.DateOnly}

// maxTime is the latest time a typed column takes: the end of year 9999,
// as far as RFC 3339 (and so the API's answers) can write a time. Unix
// numbers can say much later ones, which Postgres refuses (timestamptz ends
// in year 294276) or which wrap when encoded as a date.
var maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// parseTime reads s as a time: an RFC 3339 or ISO date-time or date, or
// Unix seconds (milliseconds above 1e12). A time after maxTime is no time.
func parseTime(s string) (time.Time, bool) {
	t, ok := parseTimeInZone(s)
	return t.UTC(), ok
}

// parseTimeInZone is parseTime keeping the offset the value names.
func parseTimeInZone(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if t.UTC().After(maxTime) || t.UTC().Year() < 1 {
				return time.Time{}, false
			}
			return t, true
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		t := time.Unix(n, 0).UTC()
		if n > 1e12 {
			t = time.UnixMilli(n).UTC()
		}
		if t.After(maxTime) {
			return time.Time{}, false
		}
		return t, true
	}
	return time.Time{}, false
}

// mergeData returns cur's fields overlaid with add's. When cur is empty the
// event's own bytes (raw) are kept as they are, and asCarried is true. The result is an object
// with its keys sorted and the values' bytes as they came (they were parsed
// from JSON, so they are JSON): the stored jsonb normalises them anyway,
// and re-encoding every value (as encoding/json would, to compact them) was
// most of a rebuild's cost of folding an update into an entity.
func mergeData(cur json.RawMessage, add map[string]json.RawMessage, raw json.RawMessage) (merged json.RawMessage, asCarried bool) {
	var base map[string]json.RawMessage
	if len(cur) > 0 {
		p := parsers.Get()
		if v, err := p.ParseBytes(cur); err == nil && v.Type() == fastjson.TypeObject {
			_, base = members(v.GetObject(), len(cur))
		}
		parsers.Put(p)
	}
	if len(base) == 0 && raw != nil {
		return raw, true
	}
	if base == nil {
		base = make(map[string]json.RawMessage, len(add))
	}
	size := 2
	for k, v := range add {
		base[k] = v
	}
	keys := make([]string, 0, len(base))
	for k, v := range base {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendKey(out, k)
		out = append(out, ':')
		v := bytes.TrimSpace(base[k])
		if len(v) == 0 {
			v = []byte("null")
		}
		out = append(out, v...)
	}
	return append(out, '}'), false
}

// appendKey appends k as a JSON string: plain ASCII as it is, anything
// else the way encoding/json writes it.
func appendKey(out []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(k)
			return append(out, q...)
		}
	}
	out = append(out, '"')
	out = append(out, k...)
	return append(out, '"')
}

package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/roisystems/softprohub/domain"
)

// ErrInvalidPayload marks a body that is not a SoftPro webhook.
var ErrInvalidPayload = errors.New("invalid payload")

// Payload is the part of a SoftPro webhook body ingest needs; the body
// itself goes onto the log untouched.
type Payload struct {
	ID        string
	Type      string
	Timestamp time.Time
}

// ParsePayload reads id, type and timestamp from a webhook body. The
// timestamp is RFC 3339. A body nested deeper than domain.MaxPayloadDepth,
// which the projections could not read, and a type of the records syncs
// pull (transaction.synced, …) are refused too.
func ParsePayload(body []byte) (Payload, error) {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Payload{}, fmt.Errorf("%w: body must be a JSON object", ErrInvalidPayload)
	}
	// Before decoding, which would call a body nested deeper than its own
	// limit (10,000 levels) not JSON.
	if domain.TooDeep(body) {
		return Payload{}, fmt.Errorf("%w: body is nested deeper than %d levels, the most the projections read", ErrInvalidPayload, domain.MaxPayloadDepth)
	}
	var raw struct {
		ID        *string `json:"id"`
		Type      *string `json:"type"`
		Timestamp *string `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return Payload{}, fmt.Errorf("%w: body must be a JSON object", ErrInvalidPayload)
			}
			return Payload{}, fmt.Errorf("%w: %s must be a string", ErrInvalidPayload, typeErr.Field)
		}
		return Payload{}, fmt.Errorf("%w: body is not valid JSON", ErrInvalidPayload)
	}
	switch {
	case raw.ID == nil || *raw.ID == "":
		return Payload{}, fmt.Errorf("%w: id is required", ErrInvalidPayload)
	case raw.Type == nil || *raw.Type == "":
		return Payload{}, fmt.Errorf("%w: type is required", ErrInvalidPayload)
	case raw.Timestamp == nil || *raw.Timestamp == "":
		return Payload{}, fmt.Errorf("%w: timestamp is required", ErrInvalidPayload)
	case len(*raw.Type) > 128:
		return Payload{}, fmt.Errorf("%w: type must be at most 128 characters", ErrInvalidPayload)
	case strings.ContainsFunc(*raw.Type, unicode.IsControl):
		return Payload{}, fmt.Errorf("%w: type must not contain control characters", ErrInvalidPayload)
	case domain.EventType(*raw.Type).SyncRecord():
		return Payload{}, fmt.Errorf("%w: type %s is reserved for records pulled by syncs", ErrInvalidPayload, *raw.Type)
	}
	if problem := eventIDProblem("id", *raw.ID); problem != "" {
		return Payload{}, fmt.Errorf("%w: %s", ErrInvalidPayload, problem)
	}
	ts, err := time.Parse(time.RFC3339Nano, *raw.Timestamp)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: timestamp must be RFC 3339", ErrInvalidPayload)
	}
	// An offset can carry a valid timestamp out of years 0000-9999 in UTC,
	// which the event (RFC 3339, UTC) cannot hold.
	if y := ts.UTC().Year(); y < 0 || y > 9999 {
		return Payload{}, fmt.Errorf("%w: timestamp must fall within years 0000-9999 in UTC", ErrInvalidPayload)
	}
	return Payload{ID: *raw.ID, Type: *raw.Type, Timestamp: ts.UTC()}, nil
}

// maxEventID is the longest event id accepted, whichever field or header
// carries it.
const maxEventID = 256

// eventIDProblem says what breaks the event id rules in the id found in
// field (at most maxEventID bytes, no control characters, valid UTF-8
// without U+FFFD), "" when nothing. JSON decoding turns an invalid byte or
// an unpaired surrogate escape into U+FFFD, so two different ids would
// otherwise share one dedup key and one event id on the log.
func eventIDProblem(field, id string) string {
	switch {
	case len(id) > maxEventID:
		return fmt.Sprintf("%s must be at most %d characters", field, maxEventID)
	case strings.ContainsFunc(id, unicode.IsControl):
		return fmt.Sprintf("%s must not contain control characters", field)
	case strings.ContainsRune(id, utf8.RuneError):
		return fmt.Sprintf("%s must be valid UTF-8 without U+FFFD", field)
	}
	return ""
}

package httpapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	segjson "github.com/segmentio/encoding/json"
)

// maxBodyBytes bounds the JSON body of a management request; a longer one
// is cut there and fails to decode.
const maxBodyBytes = 1 << 20

// decodeBody reads a required JSON body strictly: unknown fields (and
// names that match a field only when case is ignored) and
// trailing data are errors a client should hear about, and so is text
// Postgres cannot hold (see textProblem).
func decodeBody(r *http.Request, v any) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeStrict(raw, v)
}

// decodeOptionalBody is decodeBody for a body that may be left out. A
// body of no bytes (or only white space) leaves v as it is, however the
// request frames it: Content-Length 0, chunked, or no body at all.
func decodeOptionalBody(r *http.Request, v any) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	return decodeStrict(raw, v)
}

// decodeNoBody is for a route that takes no body: one that names a field
// is refused as an unknown field is, rather than ignored; a body of no
// bytes (or only white space), however framed, and {} are none.
func decodeNoBody(r *http.Request) error {
	return decodeOptionalBody(r, &struct{}{})
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	return raw, nil
}

func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	// encoding/json matches a key to a field ignoring case ("ID" for id);
	// segmentio/encoding can refuse that. Its other errors quote the input,
	// so it only checks the keys of what encoding/json decoded.
	fresh := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	if _, err := segjson.Parse(raw, fresh, segjson.DisallowUnknownFields|segjson.DontMatchCaseInsensitiveStructFields); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if field := textProblem(raw); field != "" {
		return fmt.Errorf("invalid field %s: must be text without NUL characters", field)
	}
	return nil
}

// textProblem returns the JSON path (organizationId, eventIds[2],
// retryConfig.x) of a string of raw, a key or a value, that holds a NUL
// character, which Postgres text cannot hold (the first in document order
// for arrays, in key order for objects); "" when there is none. (Bytes
// that are not UTF-8 do not get this far: the decoder turns them into
// U+FFFD.) raw is valid JSON.
func textProblem(raw []byte) string {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return nulPath(v, "")
}

// nulPath is textProblem over a decoded value found at path.
func nulPath(v any, path string) string {
	switch x := v.(type) {
	case string:
		if strings.ContainsRune(x, 0) {
			return cmp.Or(path, "body")
		}
	case []any:
		for i, e := range x {
			if p := nulPath(e, path+"["+strconv.Itoa(i)+"]"); p != "" {
				return p
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			name := k
			if !isText(k) {
				name = strconv.QuoteToASCII(k)
			}
			if path != "" {
				name = path + "." + name
			}
			if strings.ContainsRune(k, 0) {
				return name
			}
			if p := nulPath(x[k], name); p != "" {
				return p
			}
		}
	}
	return ""
}

// present is a body field whose presence counts, null included: set is
// true when the body names the field, v its value (zero for null).
type present[T any] struct {
	set bool
	v   T
}

func (p *present[T]) UnmarshalJSON(b []byte) error {
	p.set = true
	if string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, &p.v)
}

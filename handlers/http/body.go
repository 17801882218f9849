package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxBodyBytes bounds the JSON body of a management request; a longer one
// is cut there and fails to decode.
const maxBodyBytes = 1 << 20

// decodeBody reads a required JSON body strictly: unknown fields and
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
	if field := textProblem(raw); field != "" {
		return fmt.Errorf("invalid field %s: must be text without NUL characters", field)
	}
	return nil
}

// textProblem returns the JSON path (organizationId, eventIds[2],
// retryConfig.x) of the first string of raw, a key or a value, that holds
// a NUL character, which Postgres text cannot hold; "" when there is none.
// (Bytes that are not UTF-8 do not get this far: the decoder turns them
// into U+FFFD.) raw is valid JSON.
func textProblem(raw []byte) string {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return ""
	}
	type level struct {
		object  bool
		wantKey bool
		key     string
		index   int
	}
	var stack []*level
	path := func() string {
		var b strings.Builder
		for _, l := range stack {
			switch {
			case !l.object:
				b.WriteString("[" + strconv.Itoa(l.index) + "]")
			case b.Len() > 0:
				b.WriteString("." + l.key)
			default:
				b.WriteString(l.key)
			}
		}
		switch s := b.String(); {
		case s == "":
			return "body"
		case !isText(s):
			return strconv.QuoteToASCII(s)
		default:
			return s
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *level
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].wantKey = true
			}
			continue
		}
		if top != nil && top.object && top.wantKey {
			top.key, _ = tok.(string)
			top.wantKey = false
			if strings.ContainsRune(top.key, 0) {
				return path()
			}
			continue
		}
		if top != nil && !top.object {
			top.index++
		}
		switch t := tok.(type) {
		case json.Delim: // an object or array opens; its parent wants a key once it closes
			stack = append(stack, &level{object: t == '{', wantKey: t == '{', index: -1})
			continue
		case string:
			if strings.ContainsRune(t, 0) {
				return path()
			}
		}
		if top != nil && top.object {
			top.wantKey = true
		}
	}
}

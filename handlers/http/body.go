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
	"sync"
	"unicode"
)

// maxBodyBytes bounds the JSON body of a management request; a longer one
// is cut there and fails to decode.
const maxBodyBytes = 1 << 20

// decodeBody reads a required JSON body strictly: unknown fields (and
// names that match a field only when case is ignored, see exactKeys) and
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
	if key := exactKeys(raw, reflect.TypeOf(v)); key != "" {
		return fmt.Errorf("invalid JSON body: json: unknown field %q", key)
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

// exactKeys returns the first key of raw, in document order, that names a
// field of t (the type decoded into) only when case is ignored, as
// encoding/json matches them: "ID" for id, "FROM" for from. It looks at
// every object t defines a struct for (nested structs, elements of slices
// and arrays, values of maps, through pointers); a map takes any key, and
// a type that decodes itself (json.Unmarshaler) or an interface takes
// whatever it takes. "" when every key is exact. raw is a JSON value that
// decoded into t without error, so each of its keys names some field.
func exactKeys(raw []byte, t reflect.Type) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	key, err := walkKeys(dec, t)
	if err != nil {
		return ""
	}
	return key
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// walkKeys reads one value from dec, checking its keys against t (nil:
// no check), and returns the first key that is not exact; it stops
// reading there.
func walkKeys(dec *json.Decoder, t reflect.Type) (string, error) {
	t = checkedType(t)
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return "", nil // a scalar
	}
	var elem reflect.Type // of array elements and map values
	var fields map[string]reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			elem = t.Elem()
		case reflect.Struct:
			fields = jsonFields(t)
		}
	}
	for dec.More() {
		valueType := elem
		if delim == '{' {
			tok, err := dec.Token()
			if err != nil {
				return "", err
			}
			if fields != nil {
				name, _ := tok.(string)
				ft, ok := fields[name]
				if !ok {
					return name, nil
				}
				valueType = ft
			}
		}
		if key, err := walkKeys(dec, valueType); key != "" || err != nil {
			return key, err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return "", err
}

// checkedType is t without its pointers, or nil when the keys of a value
// decoded into t are not this check's to judge: an interface, or a type
// that decodes itself.
func checkedType(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Interface:
			return nil
		default:
			return t
		}
	}
	return nil
}

// fieldCache holds jsonFields by struct type.
var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields maps the JSON names of struct t's fields, exactly as spelled,
// to their types, under encoding/json's rules: a json tag's name or else
// the Go name, "-" left out, the fields of an embedded struct without a
// tag name promoted, and of several fields of one name the shallowest
// (then the only tagged one) kept, none when that leaves more than one.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	type candidate struct {
		typ    reflect.Type
		depth  int
		tagged bool
		count  int // candidates of this name at this depth and taggedness
	}
	found := map[string]*candidate{}
	visited := map[reflect.Type]bool{}
	level := []reflect.Type{t}
	for depth := 0; len(level) > 0; depth++ {
		var next []reflect.Type
		for _, st := range level {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				sf := st.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, ft)
					continue
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				c, ok := found[name]
				switch {
				case !ok || c.depth > depth:
					found[name] = &candidate{typ: sf.Type, depth: depth, tagged: tagged, count: 1}
				case c.depth < depth:
				case tagged && !c.tagged:
					*c = candidate{typ: sf.Type, depth: depth, tagged: true, count: 1}
				case tagged == c.tagged:
					c.count++
				}
			}
		}
		level = next
	}
	m := make(map[string]reflect.Type, len(found))
	for name, c := range found {
		if c.count == 1 {
			m[name] = c.typ
		}
	}
	fieldCache.Store(t, m)
	return m
}

// validTagName is encoding/json's test of a json tag's name: one it
// refuses leaves the field its Go name.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

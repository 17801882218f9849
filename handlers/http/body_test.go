package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTextProblemNamesTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"none", `{"a":"b","c":[1,"d",{"e":null}]}`, ""},
		{"escaped backslash is not NUL", `{"a":"\\u0000"}`, ""},
		{"field", `{"id":"x","organizationId":"org\u0000"}`, "organizationId"},
		{"after a nested object", `{"r":{"x":1,"y":[true]},"s":"\u0000"}`, "s"},
		{"array element", `{"integrationId":"a","eventIds":["e1","e2","\u0000e"]}`, "eventIds[2]"},
		{"nested", `{"a":[{"b":"ok"},{"b":"o\u0000k"}]}`, "a[1].b"},
		{"key", `{"a\u0000":1}`, `"a\x00"`},
		{"top level", `"\u0000"`, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := textProblem([]byte(tc.body)); got != tc.want {
				t.Errorf("textProblem(%s) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func TestDecodeOptionalBody(t *testing.T) {
	t.Parallel()
	type body struct {
		Types []string `json:"types"`
	}
	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		want    string // the error's text, "" for none
		types   int
	}{
		{name: "no bytes", body: ""},
		{name: "no bytes, chunked", body: "", chunked: true},
		{name: "white space, chunked", body: " \r\n", chunked: true},
		{name: "a body", body: `{"types":["contacts"]}`, types: 1},
		{name: "a body, chunked", body: `{"types":["contacts"]}`, chunked: true, types: 1},
		{name: "unknown field", body: `{"type":["contacts"]}`, want: `unknown field "type"`},
		{name: "trailing data", body: `{} {}`, want: "trailing data"},
		{name: "NUL", body: `{"types":["a\u0000"]}`, want: "invalid field types[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(strings.NewReader(tc.body))
			}
			var b body
			err := decodeOptionalBody(r, &b)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			case tc.want == "" && len(b.Types) != tc.types:
				t.Fatalf("decoded %+v", b)
			}
		})
	}
}

// selfDecoding takes any object, whatever its keys' case.
type selfDecoding struct{ keys int }

func (s *selfDecoding) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	s.keys = len(m)
	return nil
}

type strictInner struct {
	MaxRetries int `json:"maxRetries"`
}

type StrictEmbedded struct {
	Promoted string `json:"promoted"`
	Untagged string
}

type strictBody struct {
	StrictEmbedded
	ID       *string                `json:"id"`
	Retry    *strictInner           `json:"retryConfig"`
	Nested   strictInner            `json:"nested"`
	List     []strictInner          `json:"list"`
	Ptrs     []*strictInner         `json:"ptrs"`
	Array    [2]strictInner         `json:"array"`
	ByName   map[string]strictInner `json:"byName"`
	Free     map[string]any         `json:"free"`
	Any      any                    `json:"any"`
	Raw      json.RawMessage        `json:"raw"`
	Self     selfDecoding           `json:"self"`
	SelfPtr  *selfDecoding          `json:"selfPtr"`
	Hidden   string                 `json:"-"`
	Dash     string                 `json:"-,"`
	Plain    int
	internal int
}

// TestStrictBodyKeysAreExact: a key that names a field only when case is
// ignored (encoding/json's matching) is refused as unknown, at every level
// the target type defines; maps, interfaces and types that decode
// themselves take the keys they take.
func TestStrictBodyKeysAreExact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"exact", `{"id":"a","retryConfig":{"maxRetries":1},"nested":{"maxRetries":2},"list":[{"maxRetries":3}],
			"ptrs":[null,{"maxRetries":4}],"array":[{"maxRetries":5}],"byName":{"AnyKey":{"maxRetries":6}},
			"free":{"X":{"Y":1}},"any":{"Z":[{"W":1}]},"raw":{"R":1},"self":{"S":1},"selfPtr":{"T":1},
			"promoted":"p","Untagged":"u","-":"d","Plain":7}`, ""},
		{"top level", `{"ID":"a"}`, `json: unknown field "ID"`},
		{"mixed case", `{"iD":"a"}`, `json: unknown field "iD"`},
		{"first in document order", `{"id":"a","Plain":1,"NESTED":{},"List":[]}`, `json: unknown field "NESTED"`},
		{"pointer to struct", `{"retryConfig":{"MaxRetries":1}}`, `json: unknown field "MaxRetries"`},
		{"struct", `{"nested":{"maxretries":1}}`, `json: unknown field "maxretries"`},
		{"slice element", `{"list":[{"maxRetries":1},{"MAXRETRIES":2}]}`, `json: unknown field "MAXRETRIES"`},
		{"slice of pointers", `{"ptrs":[{"Maxretries":1}]}`, `json: unknown field "Maxretries"`},
		{"array element", `{"array":[{"maxRetries":1},{"maxRETRIES":1}]}`, `json: unknown field "maxRETRIES"`},
		{"map value", `{"byName":{"k":{"MaxRetries":1}}}`, `json: unknown field "MaxRetries"`},
		{"promoted from an embedded struct", `{"Promoted":"p"}`, `json: unknown field "Promoted"`},
		{"untagged", `{"untagged":"u"}`, `json: unknown field "untagged"`},
		{"untagged plain", `{"plain":1}`, `json: unknown field "plain"`},
		{"json:\"-\" is no field", `{"Hidden":"h"}`, `json: unknown field "Hidden"`},
		{"Unicode folding", `{"byName":{"k":{"maxRetrie\u017f":1}}}`, `json: unknown field "maxRetrieſ"`},
		{"unexported", `{"internal":1}`, `json: unknown field "internal"`},
		{"unknown still unknown", `{"nope":1}`, `json: unknown field "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strictBody
			err := decodeStrict([]byte(tc.body), &b)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestNoBody: a route that takes no body takes an empty one, however
// framed, and {}; a field is refused, named.
func TestNoBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		want    string
	}{
		{name: "no bytes", body: ""},
		{name: "no bytes, chunked", body: "", chunked: true},
		{name: "white space, chunked", body: " \n", chunked: true},
		{name: "empty object", body: `{}`},
		{name: "empty object, chunked", body: ` {} `, chunked: true},
		{name: "a field", body: `{"integrationId":"a"}`, want: `invalid JSON body: json: unknown field "integrationId"`},
		{name: "a field, chunked", body: `{"foo":1}`, chunked: true, want: `unknown field "foo"`},
		{name: "trailing data", body: `{} {}`, want: "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(strings.NewReader(tc.body))
			}
			err := decodeNoBody(r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

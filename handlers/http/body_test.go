package httpapi

import (
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

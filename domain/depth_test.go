package domain

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// nested returns inner inside n arrays: [[…inner…]].
func nested(n int, inner string) string {
	return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
}

// deepWebhook is a webhook whose data holds x, a value inside n arrays: the
// payload object is level 1, data 2, x's outer array 3, its innermost
// value n+3.
func deepWebhook(n int, inner string) string {
	return `{"id":"e","type":"contact.created","timestamp":"2024-01-15T10:30:00Z","data":{"id":"con_1","x":` + nested(n, inner) + `}}`
}

// TooDeep must say exactly what the parser ChangeOf reads payloads with
// refuses for its nesting, wherever the limit is reached (a container, a
// number, a string, a key) and whatever brackets and escaped quotes the
// strings hold: ingest refuses by it what ChangeOf could not read.
func TestTooDeepAgreesWithTheParser(t *testing.T) {
	t.Parallel()
	const limit = 300 // fastjson's MaxDepth: a change of it must be seen
	if MaxPayloadDepth != limit {
		t.Fatalf("MaxPayloadDepth = %d, want %d", MaxPayloadDepth, limit)
	}
	var docs []string
	for n := limit - 4; n <= limit+2; n++ {
		docs = append(docs,
			nested(n, ""),             // the innermost array itself at level n
			nested(n, "1"),            // a number at n+1
			nested(n, "-0.5e3"),       // a number at n+1
			nested(n, "true"),         // a literal at n+1
			nested(n, `"s"`),          // a string at n+1
			nested(n, `"a\"]]]]\\"`),  // brackets and escaped quotes in a string
			nested(n, `"\\\\"`),       // escaped backslashes before the closing quote
			nested(n, `{}`),           // an object at n+1
			nested(n, `{"k":null}`),   // a key and its value at n+2
			nested(n, `{"k\"[":"]"}`), // brackets in a key with an escaped quote
			nested(n, ` [ 1 , [ ] ] `),
			deepWebhook(n-3, ""),
			deepWebhook(n-3, "0"),
			`{"pad":"`+strings.Repeat("[", 2*limit)+`","v":`+nested(n, "2")+`}`,
			`["\"`+strings.Repeat("{", limit)+`",`+nested(n, "")+`]`,
		)
	}
	docs = append(docs, `"`+strings.Repeat("[", 2*limit)+`"`, strings.Repeat(" ", 2*limit)+"1", `{}`, `1`)
	p := new(fastjson.Parser)
	refusedN := 0
	for _, d := range docs {
		if !json.Valid([]byte(d)) {
			t.Fatalf("test document is not JSON: %.80s", d)
		}
		_, err := p.Parse(d)
		refused := err != nil
		if refused {
			refusedN++
		}
		if TooDeep([]byte(d)) != refused {
			t.Errorf("TooDeep = %v, the parser's error %v, for %d bytes: %.60s…", !refused, err, len(d), d)
		}
	}
	if refusedN == 0 || refusedN == len(docs) {
		t.Fatalf("the parser refused %d of %d documents: the limit is not straddled", refusedN, len(docs))
	}
}

// ChangeOf names a payload nested too deep for its parser as such, not as
// "not a JSON object", whichever path brought it (a webhook before ingest
// refused those, or a record a sync pulled).
func TestChangeOfNamesAPayloadNestedTooDeep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     Envelope
		wantErr string
		wantID  string
	}{
		{name: "deep299", env: env(ContactCreated, "deep299", t0, deepWebhook(299, "")),
			wantErr: "unprojectable event: contact.created deep299: payload is nested deeper than 300 levels"},
		{name: "at the limit", env: env(ContactCreated, "deep297", t0, deepWebhook(297, "1")), wantID: "con_1"},
		{name: "one past the limit", env: env(ContactCreated, "deep298", t0, deepWebhook(298, "1")),
			wantErr: "payload is nested deeper than 300 levels"},
		{name: "a sync record", env: env(ContactSynced, "sync_deep", t0, `{"id":"c","x":`+nested(400, "")+`}`),
			wantErr: "payload is nested deeper than 300 levels"},
		{name: "not an object", env: env(ContactCreated, "arr", t0, nested(3, "1")),
			wantErr: "payload is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkChangeOf(t, tt.env, tt.wantID, tt.wantErr)
		})
	}
}

package domain

import (
	"encoding/json"
	"testing"
)

func TestStorableReplacesWhatPostgresRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{`{"a":"plain","b":"é \u00e9 \ud83d\ude00 \uD83D\uDE00"}`, ""},
		{`{"a":"x\\u0000y"}`, ""}, // an escaped backslash, then text
		{`{"a":"x\\\u0000y"}`, `{"a":"x\\\ufffdy"}`},
		{`{"a":"x\u0000y"}`, `{"a":"x\ufffdy"}`},
		{`{"\u0000":1}`, `{"\ufffd":1}`},
		{`{"a":"\ud83d"}`, `{"a":"\ufffd"}`},
		{`{"a":"\uDE00x"}`, `{"a":"\ufffdx"}`},
		{`{"a":"\ud83d\u0041"}`, `{"a":"\ufffd\u0041"}`},
		{`{"a":"\ud83d\ud83d\ude00"}`, `{"a":"\ufffd\ud83d\ude00"}`},
		{"{\"a\":\"bad \xff byte\"}", "{\"a\":\"bad \uFFFD byte\"}"},
	}
	for _, c := range cases {
		if !json.Valid([]byte(c.in)) {
			t.Fatalf("case %s is not JSON", c.in)
		}
		want := c.want
		if want == "" {
			want = c.in
		}
		got := storable(json.RawMessage(c.in))
		if string(got) != want {
			t.Errorf("storable(%s) = %s, want %s", c.in, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("storable(%s) = %s is not JSON", c.in, got)
		}
	}
	in := json.RawMessage(`{"a":"nothing to do"}`)
	if got := storable(in); &got[0] != &in[0] {
		t.Error("a storable payload was copied")
	}
	value, err := Envelope{Schema: SchemaV1, EventID: "e", IntegrationID: "i", Type: ContactCreated,
		Payload: json.RawMessage(`{"data":{"id":"con_1","note":"a\u0000b"}}`)}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(value)
	if err != nil {
		t.Fatal(err)
	}
	if string(env.Payload) != `{"data":{"id":"con_1","note":"a\ufffdb"}}` {
		t.Errorf("decoded payload %s keeps its \\u0000", env.Payload)
	}
}

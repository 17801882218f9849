package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnvelopeRoundTripKeepsPayloadBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
	}{
		{name: "compact", payload: `{"id":"e","type":"t"}`},
		{name: "spaced", payload: "{ \"id\" : \"e\",\n \"type\":\"t\" }"},
		{name: "trailing newline", payload: "{\"id\":\"e\"}\n"},
		{name: "leading space", payload: "  {\"id\":\"e\"}"},
		{name: "payload key inside payload", payload: `{"x":",\"payload\":1","payload":{"a":1}}`},
		{name: "unicode escapes", payload: `{"n":"caf\u00e9 \ud83d\ude00"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := Envelope{Schema: SchemaV1, EventID: `e,"payload":x`, IntegrationID: "i", Type: TaskCreated,
				OccurredAt: time.Unix(1, 0).UTC(), ReceivedAt: time.Unix(2, 0).UTC(), Source: SourceWebhook, Priority: 3,
				Payload: []byte(tt.payload)}
			b, err := in.Encode()
			if err != nil {
				t.Fatal(err)
			}
			out, err := DecodeEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Payload, in.Payload) {
				t.Fatalf("payload %q, want %q", out.Payload, in.Payload)
			}
			if out.EventID != in.EventID || out.Type != in.Type || !out.OccurredAt.Equal(in.OccurredAt) {
				t.Fatalf("head %+v", out)
			}
		})
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	t.Parallel()
	for _, v := range []string{`nope`, `{}`, `{"schema":"other"}`, `{"schema":"softprohub.event.v1","eventId":"e"}`} {
		if _, err := DecodeEnvelope([]byte(v)); !errors.Is(err, ErrInvalidEnvelope) {
			t.Errorf("%s: err = %v", v, err)
		}
	}
	if _, err := (Envelope{Payload: []byte("{")}).Encode(); !errors.Is(err, ErrInvalidEnvelope) {
		t.Errorf("encode of invalid payload: %v", err)
	}
}

// TestDecodeEnvelopeOtherLayouts: envelopes not laid out as Encode writes
// them (another producer's field order, white space, a nested payload key)
// decode in full to the same result.
func TestDecodeEnvelopeOtherLayouts(t *testing.T) {
	t.Parallel()
	head := `"schema":"softprohub.event.v1","eventId":"e","integrationId":"i","type":"task.created"`
	tests := []struct {
		name, value, payload string
	}{
		{"payload first", `{"payload":{"a":1},` + head + `}`, `{"a":1}`},
		{"payload in the middle", `{` + head + `,"payload":{"a":1},"source":"webhook"}`, `{"a":1}`},
		{"nested payload key first", `{` + head + `,"meta":{"x":1,"payload":2},"payload":{"a":1}}`, `{"a":1}`},
		{"payload last", `{` + head + `,"payload":{"a":1}}`, `{"a":1}`},
		{"white space before the brace", `{` + head + `,"payload":{"a":1} }`, `{"a":1} `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := DecodeEnvelope([]byte(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Payload) != tt.payload || e.EventID != "e" || e.Type != TaskCreated {
				t.Fatalf("decoded %q %+v, want payload %q", e.Payload, e, tt.payload)
			}
		})
	}
	if _, err := DecodeEnvelope([]byte(`{` + head + `,"payload":{"a":1}`)); !errors.Is(err, ErrInvalidEnvelope) {
		t.Errorf("truncated envelope: err = %v", err)
	}
}

// The decoder's validity check must agree with encoding/json's: the audit
// stores payloads as jsonb, so one that is not JSON must never pass.
func TestPayloadValidityAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	inputs := []string{
		`{}`, `[]`, `null`, `1`, `"s"`, `{"a":1}`, ` {"a" : [1, 2.5e-3, true, false, null]} `,
		``, ` `, `{`, `}`, `{"a":}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `1e`, `.5`, `+1`, `NaN`, `Infinity`,
		`"\u12"`, `"\x41"`, "\"a\tb\"", "\"a\x01b\"", "\"\xff\"", `"\ud800"`, `{"a":1}{"b":2}`, `{"a":1} x`,
		`{'a':1}`, `{a:1}`, `[1 2]`, `{"a" 1}`, "\v{}", "{}\u00a0", `tru`, `nul`, `"unterminated`,
		`{"deep":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`,
	}
	for _, in := range inputs {
		var e Envelope
		got := decodeEncoded([]byte(`{"schema":"v1","eventId":"e","integrationId":"i","type":"t","payload":`+in+`}`), &e)
		if want := json.Valid([]byte(in)); got && !want {
			t.Errorf("payload %q passed the fast decode; encoding/json says it is not JSON", in)
		} else if want && !got {
			t.Errorf("payload %q failed the fast decode; encoding/json says it is JSON", in)
		}
	}
}

// SyncRecord names exactly the types routed to softpro.sync.v1, the
// records sync jobs append.
func TestSyncRecordTypesAreTheSyncTopics(t *testing.T) {
	t.Parallel()
	for _, typ := range append(append([]EventType(nil), WebhookTypes...), TransactionSynced, ContactSynced, DocumentSynced, TaskSynced, "invoice.synced", "x") {
		if got, want := typ.SyncRecord(), typ.Topic() == TopicSync; got != want {
			t.Errorf("%s: SyncRecord %v, want %v (topic %s)", typ, got, want, typ.Topic())
		}
	}
	for _, st := range SyncTypes {
		if typ, _ := SyncEventType(st); !typ.SyncRecord() {
			t.Errorf("%s: %s is not a sync record type", st, typ)
		}
	}
}

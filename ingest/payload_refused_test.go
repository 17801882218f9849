package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// receiveAlone passes body, signed, to a receiver of its own and returns
// what it appended and its error.
func receiveAlone(t *testing.T, b string) (*fakeLog, error) {
	t.Helper()
	log := &fakeLog{}
	r, err := NewReceiver(Config{Now: func() time.Time { return now }}, fakeSource{
		"int_a": {ID: "int_a", Active: true, WebhookEnabled: true, SignatureScheme: domain.SchemeSoftPro, Secrets: []domain.Secret{secret("k1", "s3cret-a")}},
	}, &fakeGate{seen: map[string]bool{}}, log)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Receive(context.Background(), Request{IntegrationID: "int_a", ContentType: "application/json", Header: signed(b), Body: strings.NewReader(b)})
	return log, err
}

// refusedAsInvalid fails the test unless err is INVALID_PAYLOAD with a
// message starting msg, and nothing was appended.
func refusedAsInvalid(t *testing.T, log *fakeLog, err error, msg string) {
	t.Helper()
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Code != CodeInvalidPayload || !strings.HasPrefix(rj.Message, msg) {
		t.Fatalf("err = %v, want %s %q", err, CodeInvalidPayload, msg)
	}
	if len(log.envs) != 0 {
		t.Fatalf("a refused webhook appended %d events", len(log.envs))
	}
}

// deepBody is a webhook whose data holds x, a value inside n arrays; the
// innermost value is at level n+3 (body 1, data 2, x's outer array 3).
func deepBody(id string, n int, inner string) string {
	return fmt.Sprintf(`{"id":%q,"type":"contact.created","timestamp":%q,"data":{"id":"con_1","x":%s%s%s}}`,
		id, now.Format(time.RFC3339), strings.Repeat("[", n), inner, strings.Repeat("]", n))
}

// A body nested deeper than the projectors parse is refused with 400
// INVALID_PAYLOAD naming the limit, appending nothing (it was accepted, then
// failed as "not a JSON object"), also beyond what encoding/json reads (it
// said "not valid JSON"). A body at the limit, with brackets and escaped
// quotes inside its strings, is accepted.
func TestReceiverRefusesBodiesNestedDeeperThanTheProjectorsRead(t *testing.T) {
	t.Parallel()
	refused := []struct {
		name, body string
	}{
		{"deep299", deepBody("deep299", 299, "")},
		{"one level too deep", deepBody("deep298", 298, "1")},
		{"deeper than encoding/json reads", deepBody("deep20000", 20000, "")},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, err := receiveAlone(t, tt.body)
			refusedAsInvalid(t, log, err, "body is nested deeper than 300 levels")
		})
	}
	accepted := []struct {
		name, body string
	}{
		{"deep250", deepBody("deep250", 250, "")},
		{"at the depth limit", deepBody("deep297", 297, "1")},
		{"brackets in strings", deepBody("deep297s", 297, `"]]]]\"[[[[[[[[\\"`)},
		{"brackets in a key", fmt.Sprintf(`{"id":"k","type":"contact.created","timestamp":%q,"data":{"id":"c","%s":1}}`,
			now.Format(time.RFC3339), strings.Repeat(`\"[`, 400))},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, err := receiveAlone(t, tt.body)
			if err != nil || len(log.envs) != 1 {
				t.Fatalf("err = %v, appended %d; want it appended", err, len(log.envs))
			}
		})
	}
}

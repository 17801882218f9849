package projections

import (
	"strings"
	"testing"
)

// Validate compares an entity's data with its row's as values: key order
// and the spelling of a number do not matter, its decimal value does,
// including numbers float64 cannot hold (jsonb keeps 1e400 exactly).
func TestSameJSONComparesNumbersByTheirDecimalValue(t *testing.T) {
	t.Parallel()
	one400 := "1" + strings.Repeat("0", 400)
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{`{"a":1,"b":2}`, `{"b":2,"a":1}`, true},
		{`{"n":1e2}`, `{"n":100}`, true},
		{`{"n":1.50}`, `{"n":1.5}`, true},
		{`{"n":-0}`, `{"n":0}`, true},
		{`{"n":0.0012}`, `{"n":12e-4}`, true},
		{`{"n":1e400}`, `{"n":` + one400 + `}`, true},
		{`{"n":12345678901234567890.123456789}`, `{"n":12345678901234567890.123456789}`, true},
		{`[1e400]`, `[1e401]`, false},
		{`{"n":12345678901234567890.123456789}`, `{"n":12345678901234567890.12345678}`, false},
		{`{"n":100}`, `{"n":10}`, false},
		{`{"n":-1}`, `{"n":1}`, false},
		{`{"n":"1"}`, `{"n":1}`, false},
		{`{"a":[1,{"b":null}]}`, `{"a":[1,{"b":null}]}`, true},
		{`{"a":[1,{"b":null}]}`, `{"a":[1,{"b":false}]}`, false},
		{`{"a":1}`, `{"a":1,"b":1}`, false},
	} {
		if got := sameJSON([]byte(tc.a), []byte(tc.b)); got != tc.same {
			t.Errorf("sameJSON(%.60s, %.60s) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

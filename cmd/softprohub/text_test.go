package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestListText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"org_1", "org_1"},
		{"Acme Title & Escrow", "Acme Title & Escrow"},
		{"société", "société"},
		{"", ""},
		{"evil\nfake\torg=x", `"evil\nfake\torg=x"`},
		{"cr\r", `"cr\r"`},
		{"del\x7f", `"del\x7f"`},
		{"c1\u0085", `"c1\u0085"`},
		{"esc\x1b[2J", `"esc\x1b[2J"`},
		{"\xff", `"\xff"`},
		// A value that starts with a quote is quoted, so that it cannot
		// pass for an escaped one.
		{`"evil\nfake"`, `"\"evil\\nfake\""`},
	} {
		if got := listText(tt.in); got != tt.want {
			t.Errorf("listText(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if strings.ContainsAny(listText(tt.in), "\n\r\t\x7f") {
			t.Errorf("listText(%q) keeps a control character", tt.in)
		}
	}
}

func TestJSONOutEscapesDELAndC1(t *testing.T) {
	var b strings.Builder
	in := map[string]string{"organizationId": "a\x7fb\u0085c\u009bd\u0080é\n"}
	if err := json.NewEncoder(jsonOut(&b)).Encode(in); err != nil {
		t.Fatal(err)
	}
	if want := `{"organizationId":"a\u007fb\u0085c\u009bd\u0080é\n"}` + "\n"; b.String() != want {
		t.Fatalf("wrote %s, want %s", b.String(), want)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil || back["organizationId"] != in["organizationId"] {
		t.Fatalf("read back %q (%v), want %q", back["organizationId"], err, in["organizationId"])
	}
}

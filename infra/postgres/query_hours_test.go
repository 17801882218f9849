package postgres

import (
	"testing"
	"time"
)

func TestSplitHours(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fmtBound := func(b *time.Time) string {
		if b == nil {
			return "open"
		}
		return b.Format(time.RFC3339Nano)
	}
	tests := []struct {
		name       string
		lo, hi     time.Time
		whole      bool
		hLo, hHi   string
		partialLen int
	}{
		{name: "open both ends", whole: true, hLo: "open", hHi: "open"},
		{name: "whole hours", lo: at("2024-01-15T10:00:00Z"), hi: at("2024-01-15T12:00:00Z"), whole: true,
			hLo: "2024-01-15T10:00:00Z", hHi: "2024-01-15T12:00:00Z"},
		{name: "partial ends", lo: at("2024-01-15T10:30:00Z"), hi: at("2024-01-15T12:15:00Z"), whole: true,
			hLo: "2024-01-15T11:00:00Z", hHi: "2024-01-15T12:00:00Z", partialLen: 2},
		{name: "inside one hour", lo: at("2024-01-15T10:10:00Z"), hi: at("2024-01-15T10:20:00Z"), partialLen: 1},
		{name: "empty", lo: at("2024-01-15T10:20:00Z"), hi: at("2024-01-15T10:20:00Z")},
		// The first hour of year 1 truncates to the zero time: still a bound.
		{name: "ends in the first hour of year 1", hi: at("0001-01-01T00:00:00.000002Z"), whole: true,
			hLo: "open", hHi: "0001-01-01T00:00:00Z", partialLen: 1},
		{name: "ends at the second hour of year 1", hi: at("0001-01-01T01:00:00Z"), whole: true,
			hLo: "open", hHi: "0001-01-01T01:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hours, whole, partial := splitHours(tt.lo, tt.hi)
			if whole != tt.whole || len(partial) != tt.partialLen {
				t.Fatalf("whole %v, %d partial ranges (%v); want %v, %d", whole, len(partial), partial, tt.whole, tt.partialLen)
			}
			if !whole {
				return
			}
			if got := fmtBound(hours.lo); got != tt.hLo {
				t.Errorf("whole hours from %s, want %s", got, tt.hLo)
			}
			if got := fmtBound(hours.hi); got != tt.hHi {
				t.Errorf("whole hours to %s, want %s", got, tt.hHi)
			}
		})
	}
}

package main

import (
	"errors"
	"math"
	"syscall"
	"testing"
	"time"
)

func TestSummarizeLatency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		micros []int64
		want   latencySummary
	}{
		{name: "empty", want: latencySummary{}},
		{name: "single value", micros: []int64{2500}, want: latencySummary{P50: 2.5, P95: 2.5, P99: 2.5, Max: 2.5}},
		{
			name: "uniform 1 to 1000 ms",
			micros: func() []int64 {
				var v []int64
				for ms := int64(1); ms <= 1000; ms++ {
					v = append(v, ms*1000)
				}
				return v
			}(),
			want: latencySummary{P50: 500, P95: 950, P99: 990, Max: 1000},
		},
		{
			name:   "tail of one slow request in a hundred",
			micros: append(repeat(1000, 989), repeat(40_000, 11)...),
			want:   latencySummary{P50: 1, P95: 1, P99: 40, Max: 40},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHistogram()
			for _, v := range tt.micros {
				if err := h.RecordValue(v); err != nil {
					t.Fatal(err)
				}
			}
			got := summarizeLatency(h)
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"p50", got.P50, tt.want.P50}, {"p95", got.P95, tt.want.P95}, {"p99", got.P99, tt.want.P99}, {"max", got.Max, tt.want.Max}} {
				// Three significant digits: within 0.1 % plus rounding to µs.
				if math.Abs(c.got-c.want) > c.want*0.001+0.001 {
					t.Errorf("%s = %.3f ms, want %.3f ms", c.name, c.got, c.want)
				}
			}
		})
	}
}

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestPerSecond(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		n       int64
		elapsed time.Duration
		want    float64
	}{
		{name: "whole seconds", n: 120_000, elapsed: 20 * time.Second, want: 6000},
		{name: "rounds to a tenth", n: 1000, elapsed: 3 * time.Second, want: 333.3},
		{name: "no time", n: 5, elapsed: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := perSecond(tt.n, tt.elapsed); got != tt.want {
				t.Errorf("perSecond(%d, %s) = %v, want %v", tt.n, tt.elapsed, got, tt.want)
			}
		})
	}
}

func TestTallyAccounting(t *testing.T) {
	t.Parallel()
	a, b := newTally(), newTally()
	a.observe(kindFresh, 200, []byte(`{"success":true,"eventId":"e1"}`), time.Millisecond)
	a.observe(kindDup, 200, []byte(`{"success":true,"eventId":"e1","duplicate": true}`), time.Millisecond)
	a.observe(kindDup, 200, []byte(`{"success":true,"duplicate":false}`), time.Millisecond)
	b.observe(kindBadSig, 401, []byte(`{"success":false,"error":{"code":"SIGNATURE_INVALID","message":"no"}}`), time.Millisecond)
	b.observe(kindFresh, 429, []byte(`{"success":false,"error":{"code":"RATE_LIMITED","message":"slow down"}}`), time.Millisecond)
	b.observe(kindFresh, 502, []byte(`<html>bad gateway</html>`), time.Millisecond)
	b.fail(kindFresh, syscall.ECONNREFUSED)
	b.maxSendLag = 3 * time.Millisecond
	a.merge(b)

	r := a.result(time.Second)
	if r.Sent != 7 || r.Accepted != 3 || r.Duplicates != 1 || r.AcceptedPerSec != 3 {
		t.Errorf("sent %d accepted %d duplicates %d rate %v, want 7, 3, 1, 3", r.Sent, r.Accepted, r.Duplicates, r.AcceptedPerSec)
	}
	if r.DupSent != 2 || r.DupDetected != 1 || r.DupUnseen != 1 {
		t.Errorf("redeliveries sent %d detected %d unseen %d, want 2, 1, 1", r.DupSent, r.DupDetected, r.DupUnseen)
	}
	if r.BadSigSent != 1 || r.BadSigRejected != 1 || r.BadSigAccepted != 0 {
		t.Errorf("bad sigs sent %d rejected %d accepted %d, want 1, 1, 0", r.BadSigSent, r.BadSigRejected, r.BadSigAccepted)
	}
	if r.FreshRejected != 3 {
		t.Errorf("fresh rejected = %d, want 3", r.FreshRejected)
	}
	wantStatus := map[string]int64{"401": 1, "429": 1, "502": 1}
	wantCode := map[string]int64{"SIGNATURE_INVALID": 1, "RATE_LIMITED": 1, "(none)": 1}
	for k, v := range wantStatus {
		if r.ErrorsByStatus[k] != v {
			t.Errorf("errorsByStatus = %v, want %v", r.ErrorsByStatus, wantStatus)
		}
	}
	for k, v := range wantCode {
		if r.ErrorsByCode[k] != v {
			t.Errorf("errorsByCode = %v, want %v", r.ErrorsByCode, wantCode)
		}
	}
	if r.TransportErrors["connection_refused"] != 1 {
		t.Errorf("transportErrors = %v, want connection_refused=1", r.TransportErrors)
	}
	if r.MaxSendLagMs != 3 {
		t.Errorf("maxSendLagMs = %v, want 3", r.MaxSendLagMs)
	}
	if r.P50Ms < 0.999 || r.P50Ms > 1.001 {
		t.Errorf("p50 = %v ms, want 1", r.P50Ms)
	}
}

func TestTransportClass(t *testing.T) {
	t.Parallel()
	if got := transportClass(errors.New("weird")); got != "other" {
		t.Errorf("transportClass(weird) = %q, want other", got)
	}
	if got := transportClass(syscall.ECONNRESET); got != "connection_reset" {
		t.Errorf("transportClass(ECONNRESET) = %q, want connection_reset", got)
	}
}

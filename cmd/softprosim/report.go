package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 5 min with three
// significant digits: a 10 ms value is known to ±10 µs.
const (
	histMinMicros = 1
	histMaxMicros = int64(5 * time.Minute / time.Microsecond)
	histSigFigs   = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
}

// tally counts the outcomes seen by one worker. It is not safe for
// concurrent use: each worker owns one and they are merged at the end.
type tally struct {
	hist *hdrhistogram.Histogram

	sent, accepted, duplicates                            int64
	dupSent, dupDetected, badSigSent, badSigRejected      int64
	byStatus, byCode, transport                           map[string]int64
	maxSendLag                                            time.Duration
	freshRejected, dupRejected, badSigAccepted, dupUnseen int64
}

func newTally() *tally {
	return &tally{
		hist:     newHistogram(),
		byStatus: map[string]int64{}, byCode: map[string]int64{}, transport: map[string]int64{},
	}
}

// observe records one answered request of kind k: its status, body and the
// latency from its intended send time.
func (t *tally) observe(k kind, status int, body []byte, latency time.Duration) {
	t.sent++
	t.count(k)
	_ = t.hist.RecordValue(min(max(latency.Microseconds(), histMinMicros), histMaxMicros))
	if status >= 200 && status < 300 {
		t.accepted++
		dup := isDuplicate(body)
		if dup {
			t.duplicates++
		}
		switch k {
		case kindDup:
			if dup {
				t.dupDetected++
			} else {
				t.dupUnseen++
			}
		case kindBadSig:
			t.badSigAccepted++
		}
		return
	}
	t.byStatus[strconv.Itoa(status)]++
	code := errorCode(body)
	t.byCode[code]++
	switch k {
	case kindFresh:
		t.freshRejected++
	case kindDup:
		t.dupRejected++
	case kindBadSig:
		if code == "SIGNATURE_INVALID" {
			t.badSigRejected++
		}
	}
}

// fail records a request of kind k that got no HTTP answer.
func (t *tally) fail(k kind, err error) {
	t.sent++
	t.count(k)
	t.transport[transportClass(err)]++
	if k == kindFresh {
		t.freshRejected++
	}
}

func (t *tally) count(k kind) {
	switch k {
	case kindDup:
		t.dupSent++
	case kindBadSig:
		t.badSigSent++
	}
}

// merge adds o into t.
func (t *tally) merge(o *tally) {
	t.hist.Merge(o.hist)
	t.sent += o.sent
	t.accepted += o.accepted
	t.duplicates += o.duplicates
	t.dupSent += o.dupSent
	t.dupDetected += o.dupDetected
	t.dupUnseen += o.dupUnseen
	t.dupRejected += o.dupRejected
	t.badSigSent += o.badSigSent
	t.badSigRejected += o.badSigRejected
	t.badSigAccepted += o.badSigAccepted
	t.freshRejected += o.freshRejected
	t.maxSendLag = max(t.maxSendLag, o.maxSendLag)
	for dst, src := range map[*map[string]int64]map[string]int64{&t.byStatus: o.byStatus, &t.byCode: o.byCode, &t.transport: o.transport} {
		for k, v := range src {
			(*dst)[k] += v
		}
	}
}

var duplicateKey = []byte(`"duplicate"`)

// isDuplicate reports whether a 2xx body says "duplicate":true. Most bodies
// do not mention the field, so the JSON is only parsed when it does.
func isDuplicate(body []byte) bool {
	if !bytes.Contains(body, duplicateKey) {
		return false
	}
	var r struct {
		Duplicate bool `json:"duplicate"`
	}
	return json.Unmarshal(body, &r) == nil && r.Duplicate
}

// errorCode reads error.code from an error body
// {"success":false,"error":{"code":"...","message":"..."}}; bodies of
// another shape count as "(none)".
func errorCode(body []byte) string {
	var r struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &r) != nil || r.Error.Code == "" {
		return "(none)"
	}
	return r.Error.Code
}

// transportClass names a request failure that produced no HTTP answer.
func transportClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	default:
		return "other"
	}
}

// latencySummary is the latency distribution in milliseconds.
type latencySummary struct {
	P50, P95, P99, Max float64
}

// summarizeLatency reads the percentiles off a histogram of microseconds.
// An empty histogram gives zeros.
func summarizeLatency(h *hdrhistogram.Histogram) latencySummary {
	if h.TotalCount() == 0 {
		return latencySummary{}
	}
	ms := func(us int64) float64 { return math.Round(float64(us)) / 1000 }
	return latencySummary{
		P50: ms(h.ValueAtQuantile(50)),
		P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)),
		Max: ms(h.Max()),
	}
}

// perSecond is n over elapsed, rounded to 0.1; zero when no time passed.
func perSecond(n int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return math.Round(float64(n)/elapsed.Seconds()*10) / 10
}

// Result is the machine-readable outcome of a load run, printed as the
// final line "RESULT {json}". Field names are a contract with
// scripts/bench-ingest.sh.
type Result struct {
	Target         string  `json:"target"`
	Mode           string  `json:"mode"`
	Scheme         string  `json:"scheme"`
	RunID          string  `json:"runId"`
	Rate           float64 `json:"rate"`
	Concurrency    int     `json:"concurrency"`
	Integrations   int     `json:"integrations"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
	Sent           int64   `json:"sent"`
	Accepted       int64   `json:"accepted"`
	AcceptedPerSec float64 `json:"acceptedPerSec"`
	// Duplicates are 2xx answers with "duplicate":true, whatever was sent.
	Duplicates int64   `json:"duplicates"`
	P50Ms      float64 `json:"p50Ms"`
	P95Ms      float64 `json:"p95Ms"`
	P99Ms      float64 `json:"p99Ms"`
	MaxMs      float64 `json:"maxMs"`
	// MaxSendLagMs is how late the generator itself started a request
	// against its schedule (fixed rate only); large values mean the
	// generator, not the target, was the bottleneck.
	MaxSendLagMs    float64          `json:"maxSendLagMs"`
	ErrorsByStatus  map[string]int64 `json:"errorsByStatus"`
	ErrorsByCode    map[string]int64 `json:"errorsByCode"`
	TransportErrors map[string]int64 `json:"transportErrors"`
	// FreshRejected counts correctly signed new events that were not
	// accepted.
	FreshRejected  int64 `json:"freshRejected"`
	DupSent        int64 `json:"dupSent"`
	DupDetected    int64 `json:"dupDetected"`
	DupUnseen      int64 `json:"dupUnseen"`
	BadSigSent     int64 `json:"badSigSent"`
	BadSigRejected int64 `json:"badSigRejected"`
	BadSigAccepted int64 `json:"badSigAccepted"`
	// PoolExhausted is true when a timed run used every pre-generated
	// request before its duration ended and stopped early.
	PoolExhausted bool `json:"poolExhausted"`
}

// result turns a merged tally into a Result; elapsed runs from the first
// scheduled send to the last answer.
func (t *tally) result(elapsed time.Duration) Result {
	lat := summarizeLatency(t.hist)
	return Result{
		ElapsedSeconds: math.Round(elapsed.Seconds()*1000) / 1000,
		Sent:           t.sent, Accepted: t.accepted, AcceptedPerSec: perSecond(t.accepted, elapsed),
		Duplicates: t.duplicates,
		P50Ms:      lat.P50, P95Ms: lat.P95, P99Ms: lat.P99, MaxMs: lat.Max,
		MaxSendLagMs:   math.Round(float64(t.maxSendLag.Microseconds())) / 1000,
		ErrorsByStatus: t.byStatus, ErrorsByCode: t.byCode, TransportErrors: t.transport,
		FreshRejected: t.freshRejected,
		DupSent:       t.dupSent, DupDetected: t.dupDetected, DupUnseen: t.dupUnseen,
		BadSigSent: t.badSigSent, BadSigRejected: t.badSigRejected, BadSigAccepted: t.badSigAccepted,
	}
}

// print writes the human-readable report followed by the RESULT line.
func (r Result) print(w io.Writer) error {
	var b strings.Builder
	mode := r.Mode
	if r.Rate > 0 {
		mode += fmt.Sprintf(" %g/s", r.Rate)
	}
	fmt.Fprintf(&b, "target       %s (%s, %s, %d integrations, concurrency %d, run %s)\n",
		r.Target, mode, r.Scheme, r.Integrations, r.Concurrency, r.RunID)
	fmt.Fprintf(&b, "elapsed      %.3f s\n", r.ElapsedSeconds)
	fmt.Fprintf(&b, "sent         %d\n", r.Sent)
	fmt.Fprintf(&b, "accepted     %d (2xx; %d duplicates)  %.1f/s\n", r.Accepted, r.Duplicates, r.AcceptedPerSec)
	fmt.Fprintf(&b, "latency ms   p50 %.3f  p95 %.3f  p99 %.3f  max %.3f", r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs)
	if r.Mode == modeFixedRate {
		fmt.Fprintf(&b, "  (from intended send time; max send lag %.3f)", r.MaxSendLagMs)
	}
	b.WriteByte('\n')
	writeCounts(&b, "errors/status", r.ErrorsByStatus)
	writeCounts(&b, "errors/code", r.ErrorsByCode)
	writeCounts(&b, "transport", r.TransportErrors)
	if r.DupSent > 0 {
		fmt.Fprintf(&b, "redeliveries %d sent, %d answered duplicate, %d accepted as new\n", r.DupSent, r.DupDetected, r.DupUnseen)
	}
	if r.BadSigSent > 0 {
		fmt.Fprintf(&b, "bad sigs     %d sent, %d rejected SIGNATURE_INVALID, %d accepted\n", r.BadSigSent, r.BadSigRejected, r.BadSigAccepted)
	}
	if r.PoolExhausted {
		b.WriteString("warning      request pool exhausted before the duration ended; raise --pool\n")
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	fmt.Fprintf(&b, "RESULT %s\n", line)
	_, err = io.WriteString(w, b.String())
	return err
}

func writeCounts(b *strings.Builder, label string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(b, "%-12s", label)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(b, " %s=%d", k, m[k])
	}
	b.WriteByte('\n')
}

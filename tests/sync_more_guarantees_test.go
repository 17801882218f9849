package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/cmd/softprosim/sim"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// listCall is one list request that reached the SoftPro API.
type listCall struct {
	at    time.Time
	typ   string
	query map[string][]string
}

// spyAPI serves the simulator's API through answer, recording every list
// request. answer returns 0 to let the simulator answer, or a status to
// answer with (and its Retry-After, when not empty) instead.
type spyAPI struct {
	mu    sync.Mutex
	calls []listCall
}

func (sp *spyAPI) serve(t *testing.T, s *sim.Sim, answer func(n int, typ string) (status int, retryAfter string)) *httptest.Server {
	t.Helper()
	inner := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if len(parts) != 4 || parts[0] != "t" || parts[2] != "v1" {
			inner.ServeHTTP(w, r)
			return
		}
		sp.mu.Lock()
		sp.calls = append(sp.calls, listCall{at: time.Now(), typ: parts[3], query: r.URL.Query()})
		n := len(sp.calls)
		sp.mu.Unlock()
		status, ra := 0, ""
		if answer != nil {
			status, ra = answer(n, parts[3])
		}
		if status == 0 {
			inner.ServeHTTP(w, r)
			return
		}
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		http.Error(w, fmt.Sprintf(`{"error":"status %d"}`, status), status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (sp *spyAPI) list() []listCall {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]listCall(nil), sp.calls...)
}

// A run asks for the changes since its watermark less exactly one minute:
// the modified_since SoftPro receives for each type is the type's saved
// watermark minus 1 min, not the watermark itself nor anything else.
func TestSyncAsksFromOneMinuteBeforeTheWatermark(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("overlap", nil)
	s, _ := simulator(t, sim.Config{Records: 30, MaxPage: 10}, id)
	var spy spyAPI
	srv := spy.serve(t, s, nil)
	e.connect(s, srv, id, false)
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("first run: %+v", run)
	}
	for _, c := range spy.list() {
		if v, ok := c.query["modified_since"]; ok {
			t.Fatalf("the first run of %s asked modified_since=%v: want everything", c.typ, v)
		}
	}
	marks := map[string]time.Time{}
	for _, typ := range domain.SyncTypes {
		var mark time.Time
		if err := e.db().QueryRow(context.Background(), `SELECT watermark FROM sync_watermarks
			WHERE integration_id = $1 AND sync_type = $2`, id, typ).Scan(&mark); err != nil {
			t.Fatalf("watermark of %s: %v", typ, err)
		}
		recs := s.Snapshot(id, typ)
		if newest := recs[len(recs)-1].UpdatedAt; !mark.Equal(newest) {
			t.Fatalf("watermark of %s = %s, want the newest record's %s", typ, mark, newest)
		}
		marks[typ] = mark
	}

	first := len(spy.list())
	if run := e.syncNow(id); run.Status != ingest.RunSucceeded {
		t.Fatalf("second run: %+v", run)
	}
	seen := map[string]bool{}
	for _, c := range spy.list()[first:] {
		v := c.query["modified_since"]
		if len(v) != 1 {
			t.Fatalf("second run asked %s with modified_since %v: want one value", c.typ, v)
		}
		got, err := time.Parse(time.RFC3339Nano, v[0])
		if err != nil {
			t.Fatalf("modified_since %q: %v", v[0], err)
		}
		if want := marks[c.typ].Add(-time.Minute); !got.Equal(want) {
			t.Errorf("second run asked %s modified_since=%s, want the watermark %s less 1 min: %s",
				c.typ, v[0], marks[c.typ].UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
		}
		seen[c.typ] = true
	}
	for _, typ := range domain.SyncTypes {
		if !seen[typ] {
			t.Errorf("second run did not ask for %s", typ)
		}
	}
}

// A 408 is transient, as a 5xx is: the page is asked for 5 times in all,
// 0.5 s, 1 s, 2 s and 4 s apart, before the run fails; a page that answers
// after a few 408s is synced.
func TestSyncRetriesA408PageFiveTimesWithDoublingWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("timeout408", map[string]any{"syncTypes": []string{domain.SyncContacts}})
	s, _ := simulator(t, sim.Config{Records: 5, MaxPage: 10}, id)
	var spy spyAPI
	srv := spy.serve(t, s, func(int, string) (int, string) { return http.StatusRequestTimeout, "" })
	e.connect(s, srv, id, false)
	run := e.syncNow(id)
	calls := spy.list()
	if run.Status != ingest.RunFailed || run.Requests != 5 || run.Retries != 4 || len(calls) != 5 ||
		!strings.Contains(run.Error, "attempt 5") || !strings.Contains(run.Error, "408") {
		t.Fatalf("run against a page answering 408: %+v, %d requests reached SoftPro; want failed after 5 attempts, 4 retries", run, len(calls))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		gap := calls[i+1].at.Sub(calls[i].at)
		if gap < w*8/10 || gap > 2*w+time.Second {
			t.Errorf("wait before attempt %d: %s, want about %s", i+2, gap, w)
		}
	}

	// Four 408s, then the page: the run succeeds with every record.
	id2, _ := e.syncIntegration("timeout408ok", map[string]any{"syncTypes": []string{domain.SyncContacts}})
	s2, _ := simulator(t, sim.Config{Records: 5, MaxPage: 10}, id2)
	var spy2 spyAPI
	srv2 := spy2.serve(t, s2, func(n int, _ string) (int, string) {
		if n <= 4 {
			return http.StatusRequestTimeout, ""
		}
		return 0, ""
	})
	e.connect(s2, srv2, id2, false)
	run = e.syncNow(id2)
	if run.Status != ingest.RunSucceeded || run.Retries != 4 || run.Records[domain.SyncContacts] != 5 {
		t.Fatalf("run after four 408s: %+v", run)
	}
}

// A SoftPro answering 429 to every request is waited out at most 30 times
// for one page: the 31st 429 fails the run, and no further request is sent.
func TestSyncGivesUpAPageAfterThirtyRateLimitWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.syncIntegration("always429", map[string]any{"syncTypes": []string{domain.SyncContacts}})
	s, _ := simulator(t, sim.Config{Records: 5, MaxPage: 10}, id)
	var spy spyAPI
	srv := spy.serve(t, s, func(int, string) (int, string) { return http.StatusTooManyRequests, "0" })
	e.connect(s, srv, id, false)
	run := e.syncNow(id)
	if run.Status != ingest.RunFailed || run.RateLimited != 31 || run.Requests != 31 ||
		!strings.Contains(run.Error, "gave up after 31 rate-limited answers") {
		t.Fatalf("run against an API answering 429 to everything: %+v; want failed after 30 waits (31 answers)", run)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(spy.list()); n != 31 {
		t.Fatalf("%d requests reached SoftPro, want 31", n)
	}
}

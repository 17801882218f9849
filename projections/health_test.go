package projections

import (
	"slices"
	"testing"
	"time"
)

func TestAssessHealthThresholds(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time {
		at := now.Add(-d)
		return &at
	}
	// A busy integration expected to sync, synced a minute ago, no errors.
	base := HealthFacts{Active: true, ExpectsSync: true, LastEventAt: ago(time.Minute), LastSyncRunAt: ago(time.Minute),
		LastSuccessfulSync: ago(time.Minute)}
	with := func(change func(*HealthFacts)) HealthFacts {
		f := base
		change(&f)
		return f
	}
	tests := []struct {
		name       string
		facts      HealthFacts
		want       HealthStatus
		minS, maxS int
	}{
		{"healthy", base, Healthy, 99, 100},
		{"error rate 4.99", with(func(f *HealthFacts) { f.ErrorRate = 4.99 }), Healthy, 80, 80},
		{"error rate 5", with(func(f *HealthFacts) { f.ErrorRate = 5 }), Degraded, 79, 79},
		{"error rate 19.99", with(func(f *HealthFacts) { f.ErrorRate = 19.99 }), Degraded, 50, 50},
		{"error rate 20", with(func(f *HealthFacts) { f.ErrorRate = 20 }), Unhealthy, 49, 49},
		{"error rate 50", with(func(f *HealthFacts) { f.ErrorRate = 50 }), Unhealthy, 1, 1},
		{"error rate 100", with(func(f *HealthFacts) { f.ErrorRate = 100 }), Unhealthy, 1, 1},
		{"synced 2h ago", with(func(f *HealthFacts) { f.LastSuccessfulSync = ago(2 * time.Hour) }), Healthy, 80, 80},
		{"synced 2h1s ago", with(func(f *HealthFacts) { f.LastSuccessfulSync = ago(2*time.Hour + time.Second) }), Degraded, 79, 79},
		{"synced 12h ago", with(func(f *HealthFacts) { f.LastSuccessfulSync = ago(12 * time.Hour) }), Degraded, 50, 50},
		{"synced 12h1s ago", with(func(f *HealthFacts) { f.LastSuccessfulSync = ago(12*time.Hour + time.Second) }), Unhealthy, 49, 49},
		{"synced 3 days ago", with(func(f *HealthFacts) { f.LastSuccessfulSync = ago(72 * time.Hour) }), Unhealthy, 1, 1},
		{"never synced", with(func(f *HealthFacts) { f.LastSuccessfulSync = nil }), Unhealthy, 1, 1},
		{"never synced, connected 1h ago", with(func(f *HealthFacts) { f.LastSuccessfulSync, f.ConnectedAt = nil, ago(time.Hour) }), Healthy, 90, 90},
		{"never synced, connected 2h1s ago", with(func(f *HealthFacts) {
			f.LastSuccessfulSync, f.ConnectedAt = nil, ago(2*time.Hour+time.Second)
		}), Degraded, 79, 79},
		{"never synced, connected 12h1s ago", with(func(f *HealthFacts) {
			f.LastSuccessfulSync, f.ConnectedAt = nil, ago(12*time.Hour+time.Second)
		}), Unhealthy, 49, 49},
		{"synced long after connecting", with(func(f *HealthFacts) { f.LastSuccessfulSync, f.ConnectedAt = ago(13*time.Hour), ago(time.Minute) }), Unhealthy, 1, 49},
		{"not syncing ignores sync age", with(func(f *HealthFacts) { f.ExpectsSync, f.LastSuccessfulSync = false, ago(72*time.Hour) }), Healthy, 100, 100},
		{"not syncing, never synced", with(func(f *HealthFacts) { f.ExpectsSync, f.LastSuccessfulSync, f.LastSyncRunAt = false, nil, nil }), Healthy, 100, 100},
		{"degraded on both counts", with(func(f *HealthFacts) { f.ErrorRate, f.LastSuccessfulSync = 10, ago(3*time.Hour) }), Degraded, 50, 79},
		{"unhealthy sync beats degraded errors", with(func(f *HealthFacts) { f.ErrorRate, f.LastSuccessfulSync = 10, ago(13*time.Hour) }), Unhealthy, 1, 49},
		{"inactive", with(func(f *HealthFacts) { f.Active = false }), Disconnected, 0, 0},
		{"last activity 24h ago", with(func(f *HealthFacts) {
			f.LastEventAt, f.LastSyncRunAt, f.ExpectsSync = ago(24*time.Hour), nil, false
		}), Healthy, 100, 100},
		{"last webhook 24h1s ago, no run", with(func(f *HealthFacts) {
			f.LastEventAt, f.LastSyncRunAt = ago(24*time.Hour+time.Second), nil
		}), Disconnected, 0, 0},
		{"last run 24h1s ago, no webhook", with(func(f *HealthFacts) {
			f.LastEventAt, f.LastSyncRunAt = nil, ago(24*time.Hour+time.Second)
		}), Disconnected, 0, 0},
		{"old webhook, recent run", with(func(f *HealthFacts) { f.LastEventAt, f.LastSyncRunAt = ago(48*time.Hour), ago(time.Hour) }), Healthy, 80, 100},
		{"no activity ever", with(func(f *HealthFacts) { f.LastEventAt, f.LastSyncRunAt = nil, nil }), Disconnected, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := AssessHealth(tt.facts, now)
			if h.Status != tt.want {
				t.Fatalf("status %s, want %s (reasons %q)", h.Status, tt.want, h.Reasons)
			}
			if h.Score < tt.minS || h.Score > tt.maxS {
				t.Errorf("score %d, want %d-%d", h.Score, tt.minS, tt.maxS)
			}
			if (h.Status == Healthy) != (len(h.Reasons) == 0) {
				t.Errorf("status %s with reasons %q", h.Status, h.Reasons)
			}
		})
	}
}

func TestAssessHealthNamesEveryReason(t *testing.T) {
	t.Parallel()
	now := time.Now()
	old := now.Add(-13 * time.Hour)
	h := AssessHealth(HealthFacts{Active: true, ExpectsSync: true, LastEventAt: &now, LastSuccessfulSync: &old, ErrorRate: 7.5}, now)
	if h.Status != Unhealthy || len(h.Reasons) != 2 {
		t.Fatalf("%s %q, want UNHEALTHY with the error rate and the sync age", h.Status, h.Reasons)
	}
	if want := "error rate 7.50% is at or above 5%"; h.Reasons[0] != want {
		t.Errorf("reason %q, want %q", h.Reasons[0], want)
	}
}

func TestErrorRateCountsEventsAndRuns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                       string
		fe, ne, fr, nr             int64
		want                       float64
		wantStatusWithRecentSyncOK HealthStatus
	}{
		{"nothing finished", 0, 0, 0, 0, 0, Healthy},
		{"1 of 20 events", 1, 20, 0, 0, 5, Degraded},
		{"1 of 21 events", 1, 21, 0, 0, 4.76, Healthy},
		{"1 failed run of 4, 16 good events", 0, 16, 1, 4, 5, Degraded},
		{"2 of 3 (two decimals)", 2, 3, 0, 0, 66.67, Unhealthy},
		{"1 event and 1 run of 10", 1, 5, 1, 5, 20, Unhealthy},
	}
	now := time.Now()
	for _, tt := range tests {
		got := ErrorRate(tt.fe, tt.ne, tt.fr, tt.nr)
		if got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
		h := AssessHealth(HealthFacts{Active: true, LastEventAt: &now, ErrorRate: got}, now)
		if h.Status != tt.wantStatusWithRecentSyncOK {
			t.Errorf("%s: %s, want %s", tt.name, h.Status, tt.wantStatusWithRecentSyncOK)
		}
	}
}

func TestHourDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    HourFigures
		want bool
	}{
		{"no traffic", HourFigures{}, false},
		{"19.99% of events failed", HourFigures{EventsFinished: 10000, EventsFailed: 1999}, false},
		{"20% of events failed", HourFigures{EventsFinished: 10, EventsFailed: 2}, true},
		{"every run failed", HourFigures{RunsFailed: 2}, true},
		{"one run of two failed", HourFigures{RunsFailed: 1, RunsSucceeded: 1}, false},
		{"events fine, runs all failed", HourFigures{EventsFinished: 10, RunsFailed: 1}, true},
	}
	for _, tt := range tests {
		if got := tt.h.Down(); got != tt.want {
			t.Errorf("%s: down %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUptimeCountsThePeriodsHours(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)
	hour := func(back int) time.Time { return now.Truncate(time.Hour).Add(-time.Duration(back) * time.Hour) }
	down := HourFigures{EventsFinished: 1, EventsFailed: 1}
	at := func(back int) HourFigures { h := down; h.Hour = hour(back); return h }
	hours := []HourFigures{
		at(0),  // the current hour: in every period
		at(23), // the first hour of the day
		at(24), // the day before: in 7d and 30d only
		at(7*24 - 1),
		at(7 * 24),  // in 30d only
		at(30 * 24), // in no period
		{Hour: hour(1), EventsFinished: 100, EventsFailed: 1}, // up
	}
	tests := []struct {
		period time.Duration
		want   float64
	}{
		{24 * time.Hour, Percent(22, 24)},
		{7 * 24 * time.Hour, Percent(168-4, 168)},
		{30 * 24 * time.Hour, Percent(720-5, 720)},
	}
	for _, tt := range tests {
		if got := Uptime(hours, now, tt.period); got != tt.want {
			t.Errorf("uptime over %v: %v, want %v", tt.period, got, tt.want)
		}
	}
	if got := Uptime(nil, now, 24*time.Hour); got != 100 {
		t.Errorf("uptime without traffic: %v, want 100", got)
	}
	if got := Uptime(hours, now, 24*time.Hour); got != 91.67 {
		t.Errorf("two hours of 24 down: %v, want 91.67", got)
	}
}

func TestHealthScoreStaysInItsBand(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for rate := 0.0; rate <= 100; rate += 0.01 {
		for _, age := range []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 12 * time.Hour, 13 * time.Hour, 30 * time.Hour} {
			synced := now.Add(-age)
			f := HealthFacts{Active: true, ExpectsSync: true, LastEventAt: &now, LastSuccessfulSync: &synced, ErrorRate: rate}
			h := AssessHealth(f, now)
			band := scoreBands[h.Status]
			if h.Score < band[0] || h.Score > band[1] {
				t.Fatalf("rate %.2f, age %v: %s with score %d", rate, age, h.Status, h.Score)
			}
		}
	}
	if !slices.Equal(AssessHealth(HealthFacts{}, now).Reasons, []string{"integration is inactive"}) {
		t.Errorf("inactive reasons: %q", AssessHealth(HealthFacts{}, now).Reasons)
	}
}

func TestQueueOf(t *testing.T) {
	t.Parallel()
	at := func(m int) time.Time { return time.Date(2026, 11, 29, 12, m, 0, 0, time.UTC) }
	recs := []PendingRecord{{EventID: "evt_b", AppendedAt: at(3)}, {EventID: "evt_a", AppendedAt: at(2)}}
	if q := QueueOf(recs, false); q.Depth != 2 || q.Oldest == nil || !q.Oldest.Equal(at(2)) || q.Newest == nil || !q.Newest.Equal(at(3)) {
		t.Errorf("queue %d, %v, %v; want 2 from 12:02 to 12:03", q.Depth, q.Oldest, q.Newest)
	}
	if q := QueueOf(nil, false); q.Depth != 0 || q.Oldest != nil || q.Newest != nil {
		t.Errorf("empty queue: %+v", q)
	}
}

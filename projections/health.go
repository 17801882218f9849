package projections

import (
	"fmt"
	"math"
	"time"
)

// HealthStatus is an integration's health, a wire contract of the health
// and metrics API (the original system's IntegrationStatus).
type HealthStatus string

// Health statuses, best first.
const (
	Healthy      HealthStatus = "HEALTHY"
	Degraded     HealthStatus = "DEGRADED"
	Unhealthy    HealthStatus = "UNHEALTHY"
	Disconnected HealthStatus = "DISCONNECTED"
)

// The thresholds of the original system's health status. The original
// gave UNHEALTHY errors of 20-50 %; an error rate above 50 % is UNHEALTHY
// too (nothing is worse but DISCONNECTED, which means no traffic at all).
const (
	// DegradedErrorRate and UnhealthyErrorRate are percentages: an error
	// rate at or above them degrades the status.
	DegradedErrorRate  = 5.0
	UnhealthyErrorRate = 20.0
	// DegradedSyncAge and UnhealthySyncAge: a last successful sync older
	// than these (strictly) degrades an integration expected to sync.
	DegradedSyncAge  = 2 * time.Hour
	UnhealthySyncAge = 12 * time.Hour
	// InactivityLimit: an integration with no event received and no sync
	// run for longer than this is DISCONNECTED.
	InactivityLimit = 24 * time.Hour
)

// Percent is part of whole as a percentage with two decimals; 0 when
// whole is 0.
func Percent(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return math.Round(float64(part)*10000/float64(whole)) / 100
}

// ErrorRate is the error rate of the health rules: the failed share of
// everything that finished, events and sync runs alike, as a percentage
// with two decimals. Finished events are COMPLETED, FAILED or SKIPPED
// (RECEIVED and PROCESSING are not done yet); finished runs succeeded or
// failed (running ones are not done yet).
func ErrorRate(failedEvents, finishedEvents, failedRuns, finishedRuns int64) float64 {
	return Percent(failedEvents+failedRuns, finishedEvents+finishedRuns)
}

// HealthFacts are what an integration's status is decided on.
type HealthFacts struct {
	Active bool
	// ExpectsSync: sync is enabled and a SoftPro connection is stored
	// (SyncInfo.ExpectsSync); only then does the sync age count.
	ExpectsSync bool
	// LastEventAt is when the newest event was received, LastSyncRunAt
	// when the newest sync run started; nil when there is none.
	LastEventAt   *time.Time
	LastSyncRunAt *time.Time
	// LastSuccessfulSync is when the newest successful sync run finished.
	LastSuccessfulSync *time.Time
	// ConnectedAt is when the SoftPro connection was stored (last
	// changed); nil when unknown. With no successful sync, the sync age
	// counts from it: a connection stored minutes ago has missed nothing.
	ConnectedAt *time.Time
	// ErrorRate is a percentage (ErrorRate), over the last 24 hours.
	ErrorRate float64
}

// LastActivity is the newer of the last event and the last sync run; nil
// when there was neither.
func (f HealthFacts) LastActivity() *time.Time {
	switch {
	case f.LastEventAt == nil:
		return f.LastSyncRunAt
	case f.LastSyncRunAt == nil || f.LastEventAt.After(*f.LastSyncRunAt):
		return f.LastEventAt
	default:
		return f.LastSyncRunAt
	}
}

// Health is the verdict on an integration.
type Health struct {
	Status HealthStatus
	// Score is 0-100 (HealthScore).
	Score int
	// Reasons say why the status is not HEALTHY; empty when it is.
	Reasons []string
}

// AssessHealth decides an integration's status at now, worst rule first:
//
//   - DISCONNECTED: inactive, or no event received and no sync run for
//     more than InactivityLimit.
//   - UNHEALTHY: error rate at or above UnhealthyErrorRate, or (expected to
//     sync) the sync age (syncAge) over UnhealthySyncAge, or unknown.
//   - DEGRADED: error rate at or above DegradedErrorRate, or (expected to
//     sync) the sync age over DegradedSyncAge.
//   - HEALTHY otherwise.
//
// Every rule that holds gives a reason, so an UNHEALTHY integration also
// names what merely degrades it.
func AssessHealth(f HealthFacts, now time.Time) Health {
	if !f.Active {
		return Health{Status: Disconnected, Score: 0, Reasons: []string{"integration is inactive"}}
	}
	if last := f.LastActivity(); last == nil || now.Sub(*last) > InactivityLimit {
		return Health{Status: Disconnected, Score: 0,
			Reasons: []string{fmt.Sprintf("no event received and no sync run in the last %v", InactivityLimit)}}
	}
	h := Health{Status: Healthy}
	worse := func(s HealthStatus, reason string) {
		if s == Unhealthy || h.Status == Healthy {
			h.Status = s
		}
		h.Reasons = append(h.Reasons, reason)
	}
	switch {
	case f.ErrorRate >= UnhealthyErrorRate:
		worse(Unhealthy, fmt.Sprintf("error rate %.2f%% is at or above %.0f%%", f.ErrorRate, UnhealthyErrorRate))
	case f.ErrorRate >= DegradedErrorRate:
		worse(Degraded, fmt.Sprintf("error rate %.2f%% is at or above %.0f%%", f.ErrorRate, DegradedErrorRate))
	}
	if f.ExpectsSync {
		what := "last successful sync"
		if f.LastSuccessfulSync == nil {
			what = "no successful sync since the connection was stored"
		}
		switch age, known := syncAge(f, now); {
		case !known:
			worse(Unhealthy, "no successful sync")
		case age > UnhealthySyncAge:
			worse(Unhealthy, fmt.Sprintf("%s %v ago, over %v", what, age.Round(time.Minute), UnhealthySyncAge))
		case age > DegradedSyncAge:
			worse(Degraded, fmt.Sprintf("%s %v ago, over %v", what, age.Round(time.Minute), DegradedSyncAge))
		}
	}
	h.Score = HealthScore(f, h.Status, now)
	return h
}

// syncAge is how long the integration has gone without a successful sync:
// since the last one or, when there was none, since its connection was
// stored. known is false when there is neither.
func syncAge(f HealthFacts, now time.Time) (age time.Duration, known bool) {
	from := f.LastSuccessfulSync
	if from == nil {
		from = f.ConnectedAt
	}
	if from == nil {
		return 0, false
	}
	return max(now.Sub(*from), 0), true
}

// Score bands: a status's scores lie within its band, so the score never
// contradicts the status.
var scoreBands = map[HealthStatus][2]int{
	Healthy:      {80, 100},
	Degraded:     {50, 79},
	Unhealthy:    {1, 49},
	Disconnected: {0, 0},
}

// HealthScore is 0-100: the lower of an error score and a sync score,
// rounded, then held within the status's band (HEALTHY 80-100, DEGRADED
// 50-79, UNHEALTHY 1-49, DISCONNECTED 0). Each score falls linearly
// between the points where the status changes:
//
//   - error rate 0 % → 100, 5 % → 80, 20 % → 50, 50 % and above → 1;
//   - sync age (syncAge) 0 → 100, 2 h → 80, 12 h → 50, 24 h and older (or
//     unknown) → 1; 100 for an integration not expected to sync.
func HealthScore(f HealthFacts, status HealthStatus, now time.Time) int {
	band := scoreBands[status]
	if status == Disconnected {
		return 0
	}
	s := interpolate(f.ErrorRate, []float64{0, DegradedErrorRate, UnhealthyErrorRate, 50}, []float64{100, 80, 50, 1})
	if f.ExpectsSync {
		sync := 1.0
		if age, known := syncAge(f, now); known {
			sync = interpolate(age.Hours(),
				[]float64{0, DegradedSyncAge.Hours(), UnhealthySyncAge.Hours(), InactivityLimit.Hours()}, []float64{100, 80, 50, 1})
		}
		s = min(s, sync)
	}
	return min(max(int(math.Round(s)), band[0]), band[1])
}

// interpolate is the piecewise linear function through (xs[i], ys[i]),
// flat before the first point and after the last.
func interpolate(x float64, xs, ys []float64) float64 {
	if x <= xs[0] {
		return ys[0]
	}
	for i := 1; i < len(xs); i++ {
		if x <= xs[i] {
			return ys[i-1] + (ys[i]-ys[i-1])*(x-xs[i-1])/(xs[i]-xs[i-1])
		}
	}
	return ys[len(ys)-1]
}

// HourFigures are one UTC hour of an integration: its events by final
// state (counted in the hour they were received) and its sync runs (in
// the hour they finished).
type HourFigures struct {
	Hour           time.Time
	EventsFinished int64
	EventsFailed   int64
	RunsSucceeded  int64
	RunsFailed     int64
}

// Down reports whether the hour counts as downtime: its events failed at
// the UNHEALTHY error rate or more, or it had sync runs and all of them
// failed. An hour without traffic is not down.
func (h HourFigures) Down() bool {
	eventsDown := h.EventsFinished > 0 && Percent(h.EventsFailed, h.EventsFinished) >= UnhealthyErrorRate
	syncDown := h.RunsFailed > 0 && h.RunsSucceeded == 0
	return eventsDown || syncDown
}

// Uptime is the share of the period's hours that were not down, as a
// percentage with two decimals. The period is the whole hours that end
// with the one now is in (24 for a day, the current hour included); hours
// missing from hours had no traffic and count as up.
func Uptime(hours []HourFigures, now time.Time, period time.Duration) float64 {
	n := int64(period / time.Hour)
	if n <= 0 {
		return 100
	}
	last := now.UTC().Truncate(time.Hour)
	first := last.Add(-time.Duration(n-1) * time.Hour)
	var down int64
	for _, h := range hours {
		if !h.Hour.Before(first) && !h.Hour.After(last) && h.Down() {
			down++
		}
	}
	return Percent(n-down, n)
}

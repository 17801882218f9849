package schedule

import (
	"context"
	"fmt"
	"time"

	"github.com/roisystems/softprohub/ingest"
)

// LockHolder reads who holds a lock (redis.Locker).
type LockHolder interface {
	Holder(ctx context.Context, key string) (token string, ttl time.Duration, err error)
}

// QuotaReader reads an integration's SoftPro API quota (redis.Limiter).
type QuotaReader interface {
	RemainingQuota(ctx context.Context, id string, q ingest.Quota) (remaining int, retryAfter time.Duration, err error)
}

// LastRuns returns each integration's newest run (postgres.SyncStore).
type LastRuns interface {
	LastRuns(ctx context.Context) (map[string]ingest.SyncRun, error)
}

// IntegrationStatus is one integration's line of the scheduler status (the
// original getSchedulerStatus).
type IntegrationStatus struct {
	IntegrationID  string          `json:"integrationId"`
	Scheduled      bool            `json:"scheduled"`
	SyncFrequency  int             `json:"syncFrequency"`
	CronExpression string          `json:"cronExpression,omitempty"`
	SyncTypes      []string        `json:"syncTypes"`
	NextRun        *time.Time      `json:"nextRun,omitempty"`
	LastRun        *ingest.SyncRun `json:"lastRun,omitempty"`
	LockHolder     string          `json:"lockHolder,omitempty"`
	LockExpiresIn  string          `json:"lockExpiresIn,omitempty"`
	// RateLimit is the SoftPro API requests allowed per window;
	// QuotaRemaining those that may be sent now and, when none,
	// QuotaAvailableIn how long until one may (a 429's Retry-After
	// included): the original getRemainingQuota.
	RateLimit           int        `json:"rateLimit"`
	QuotaRemaining      int        `json:"quotaRemaining"`
	QuotaAvailableIn    string     `json:"quotaAvailableIn,omitempty"`
	SyncStatus          string     `json:"syncStatus"`
	LastSyncAt          *time.Time `json:"lastSyncAt"`
	LastScheduledSyncAt *time.Time `json:"lastScheduledSyncAt"`
	LastSyncError       *string    `json:"lastSyncError"`
}

// StatusReader answers the scheduler status from the shared state
// (integrations, runs, locks), so any process can serve it.
type StatusReader struct {
	Integrations Integrations
	Runs         LastRuns
	Locks        LockHolder
	Quotas       QuotaReader
	MinInterval  int
	// DefaultRateLimit and RateWindow shape the quotas as the sync job
	// does (ingest.QuotaOf).
	DefaultRateLimit int
	RateWindow       time.Duration
	Now              func() time.Time
}

// Status lists every integration's schedule, last run and lock holder.
func (r StatusReader) Status(ctx context.Context) ([]IntegrationStatus, error) {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	all, err := r.Integrations.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("scheduler status: %w", err)
	}
	last, err := r.Runs.LastRuns(ctx)
	if err != nil {
		return nil, fmt.Errorf("scheduler status: %w", err)
	}
	out := make([]IntegrationStatus, 0, len(all))
	for _, in := range all {
		st := IntegrationStatus{IntegrationID: in.ID, Scheduled: Scheduled(in), SyncFrequency: in.SyncFrequency,
			SyncTypes: in.SyncTypes, SyncStatus: in.SyncStatus, LastSyncAt: in.LastSyncAt,
			LastScheduledSyncAt: in.LastScheduledSyncAt, LastSyncError: in.LastSyncError}
		if st.SyncTypes == nil {
			st.SyncTypes = []string{}
		}
		if run, ok := last[in.ID]; ok {
			st.LastRun = &run
		}
		if st.Scheduled {
			spec, sched, err := ScheduleOf(in, r.MinInterval)
			st.CronExpression = spec
			if err == nil {
				// The time the scheduler's entry falls on (ScheduleOf).
				next := sched.Next(now.UTC()).UTC()
				st.NextRun = &next
			}
		}
		holder, ttl, err := r.Locks.Holder(ctx, ingest.SyncLockKey(in.ID))
		if err != nil {
			return nil, fmt.Errorf("scheduler status: %w", err)
		}
		if holder != "" {
			st.LockHolder, st.LockExpiresIn = holder, ttl.Round(time.Second).String()
		}
		q := ingest.QuotaOf(in, r.DefaultRateLimit, r.RateWindow)
		remaining, wait, err := r.Quotas.RemainingQuota(ctx, in.ID, q)
		if err != nil {
			return nil, fmt.Errorf("scheduler status: %w", err)
		}
		st.RateLimit, st.QuotaRemaining = q.Limit, remaining
		if remaining == 0 {
			st.QuotaAvailableIn = wait.Round(time.Second).String()
		}
		out = append(out, st)
	}
	return out, nil
}

package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// The ports of scheduled sync. Each is declared here, by its consumer;
// infra/softpro, infra/redis and infra/postgres satisfy them.

// PageRequest asks the SoftPro API for one page of one list endpoint.
type PageRequest struct {
	// Type is a sync type: "transactions", "contacts", "documents", "tasks".
	Type string
	// ModifiedSince, when not zero, keeps records whose updated_at is at or
	// after it.
	ModifiedSince time.Time
	// Cursor is the previous page's NextCursor; empty for the first page.
	Cursor string
	// Limit is the page size.
	Limit int
}

// Record is one SoftPro record as the API returned it.
type Record struct {
	ID        string
	UpdatedAt time.Time
	// Raw is the record's JSON, byte for byte.
	Raw json.RawMessage
}

// Page is one page of a list endpoint, ordered by (updated_at, id).
type Page struct {
	Records []Record
	// NextCursor is empty on the last page.
	NextCursor string
}

// SoftProAPI lists records of one integration's SoftPro API. Errors are
// classified: *RateLimitedError for a 429, ErrTokenRefused for an OAuth
// token the API no longer takes, *APIError otherwise (see IsRetryable).
// Implementations are safe for concurrent use.
type SoftProAPI interface {
	List(ctx context.Context, conn domain.SoftProConnection, req PageRequest) (Page, error)
}

// ErrTokenRefused is SoftPro's 401 to an OAuth token (expired or revoked
// before its time): the token is forgotten, and the request may be sent
// again, once, with a new one. Sending it again is left to the caller, so
// that it takes its turn under the rate limit like any request.
var ErrTokenRefused = errors.New("softpro api: status 401: the OAuth token was refused")

// RateLimitedError is SoftPro's 429: wait RetryAfter before the next request.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("softpro api: rate limited, retry after %s", e.RetryAfter)
}

// APIError is any other failed request. Status 0 means no answer
// (connection refused, timeout, malformed body).
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return "softpro api: " + e.Msg
	}
	return fmt.Sprintf("softpro api: status %d: %s", e.Status, e.Msg)
}

// IsRetryable reports whether repeating the request may succeed: 429s, 5xx,
// 408 and requests that got no answer.
func IsRetryable(err error) bool {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == 0 || ae.Status == 408 || ae.Status >= 500
	}
	return false
}

// ErrQuotaExhausted: the rate limit allows no request before the
// caller's deadline.
var ErrQuotaExhausted = errors.New("the rate limit allows no request before the deadline")

// Quota is an integration's SoftPro API allowance: Limit requests per Window.
type Quota struct {
	Limit  int
	Window time.Duration
}

// QuotaOf is an integration's quota: its rateLimit, else defaultLimit
// (else 100), per window (else a minute).
func QuotaOf(in domain.Integration, defaultLimit int, window time.Duration) Quota {
	q := Quota{Limit: in.RateLimit, Window: window}
	if q.Limit <= 0 {
		q.Limit = defaultLimit
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Window <= 0 {
		q.Window = time.Minute
	}
	return q
}

// Limiter is the SoftPro API rate limit shared by every process. Wait
// blocks until the integration's quota allows one more request and takes
// it, or until ctx ends; when ctx has a deadline before a request would be
// allowed, it returns an error wrapping ErrQuotaExhausted at once. Drain
// tells every process that SoftPro answered 429: nothing more may be sent
// for retryAfter.
type Limiter interface {
	Wait(ctx context.Context, integrationID string, q Quota) error
	Drain(ctx context.Context, integrationID string, q Quota, retryAfter time.Duration) error
	// RemainingQuota is how many requests may be sent now and, when none,
	// how long until one may.
	RemainingQuota(ctx context.Context, integrationID string, q Quota) (remaining int, availableIn time.Duration, err error)
}

// Locker is a lock with a TTL owned by a token: TryLock takes it when
// free, Extend and Unlock act only while token still owns it (Extend then
// reports false).
type Locker interface {
	TryLock(ctx context.Context, key string, ttl time.Duration) (token string, ok bool, err error)
	Extend(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	Unlock(ctx context.Context, key, token string) error
}

// SyncLockKey is the Redis key of an integration's sync lock.
func SyncLockKey(integrationID string) string { return "sync:lock:" + integrationID }

// ConnectionSource looks up how to reach an integration's SoftPro API; an
// error wrapping domain.ErrNotFound means none is configured.
type ConnectionSource interface {
	Connection(ctx context.Context, integrationID string) (domain.SoftProConnection, error)
}

// CheckConnection validates c as it will be stored and used: the stores
// keep the stored credentials c leaves out, and an empty base URL syncs
// from defaultBaseURL (SOFTPRO_API_URL) with "{integrationId}" replaced by
// the integration's id.
func CheckConnection(ctx context.Context, stored ConnectionSource, c domain.SoftProConnection, defaultBaseURL string) error {
	defaultURL := strings.ReplaceAll(defaultBaseURL, "{integrationId}", c.IntegrationID)
	if c.BaseURL == "" {
		c.BaseURL = defaultURL
	}
	var v domain.ValidationError
	prev, err := stored.Connection(ctx, c.IntegrationID)
	switch {
	case err == nil:
		if prev.BaseURL == "" {
			prev.BaseURL = defaultURL
		}
		// A stored credential follows the connection only to the hosts it
		// was given for: moved elsewhere, it must be given again, or
		// whoever may change the URLs could have it sent to any host.
		moved := origin(c.BaseURL) != origin(prev.BaseURL) || origin(c.TokenURL) != origin(prev.TokenURL)
		// Every stored credential, whichever mode the connection now
		// uses: one kept for the other mode would follow the move and be
		// sent there once the mode is switched back.
		if c.APIKey == "" && prev.APIKey != "" {
			if moved {
				v.Add("apiKey must be given again when baseUrl moves to another host (the stored one was given for the old host)")
			}
			c.APIKey = prev.APIKey
		}
		if c.ClientSecret == "" && prev.ClientSecret != "" {
			if moved {
				v.Add("clientSecret must be given again when baseUrl or tokenUrl moves to another host (the stored one was given for the old host)")
			}
			c.ClientSecret = prev.ClientSecret
		}
	case !errors.Is(err, domain.ErrNotFound):
		return err
	}
	// The connection's own problems first (a bad URL moves nothing).
	if err := c.Validate(); err != nil {
		return err
	}
	return v.Err()
}

// origin is the scheme and host (with its port) of a URL, "" for none.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// SyncIntegrations reads and updates integrations (the sync fields).
type SyncIntegrations interface {
	Integration(ctx context.Context, id string) (domain.Integration, error)
	Update(ctx context.Context, id string, fn func(*domain.Integration) error) (domain.Integration, error)
}

// RunRecorder keeps the record of sync runs (sync_runs).
type RunRecorder interface {
	StartRun(ctx context.Context, r SyncRun) (int64, error)
	FinishRun(ctx context.Context, r SyncRun) error
}

// Watermarks keep, per integration and sync type, where syncing stands
// (a SyncMark): the last good point a run resumes from. Watermark returns
// the zero SyncMark when none is stored. SetWatermark stores m as it is,
// earlier than the stored one too (so a gap fill can move it back); the
// sync job itself only moves it forward.
type Watermarks interface {
	Watermark(ctx context.Context, integrationID, syncType string) (SyncMark, error)
	SetWatermark(ctx context.Context, integrationID, syncType string, m SyncMark) error
}

// SyncMark is where the sync of one type of an integration stands.
type SyncMark struct {
	// At is the newest updated_at up to which every record has been
	// appended; zero when none has been.
	At time.Time
	// Recent holds the event ids, with their updated_at, of the records
	// appended whose updated_at is at or after At less the overlap: a run
	// asks for changes from there, and passes over the records it finds
	// here instead of appending them again. A record changed since has a
	// new event id. Nil or partial only costs records appended twice
	// (the projections apply each event id once).
	Recent map[string]time.Time
}

// Trigger says why a sync ran.
type Trigger string

// Triggers of sync runs.
const (
	TriggerScheduled Trigger = "scheduled"
	TriggerCatchUp   Trigger = "catch-up"
	TriggerManual    Trigger = "manual"
)

// Scheduled reports whether the run counts as the integration's scheduled
// sync (lastScheduledSyncAt).
func (t Trigger) Scheduled() bool { return t == TriggerScheduled || t == TriggerCatchUp }

// RunStatus is the state of a sync run.
type RunStatus string

// Run states.
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
)

// Sync status values written to the integration's syncStatus.
const (
	SyncStatusIdle    = "IDLE"
	SyncStatusRunning = "RUNNING"
	SyncStatusError   = "ERROR"
)

// SyncRun is one run of the sync job, as recorded in sync_runs.
type SyncRun struct {
	ID            int64          `json:"id"`
	IntegrationID string         `json:"integrationId"`
	Trigger       Trigger        `json:"trigger"`
	Types         []string       `json:"types"`
	Status        RunStatus      `json:"status"`
	StartedAt     time.Time      `json:"startedAt"`
	FinishedAt    *time.Time     `json:"finishedAt,omitempty"`
	Records       map[string]int `json:"records"`
	Requests      int            `json:"requests"`
	RateLimited   int            `json:"rateLimited"`
	Retries       int            `json:"retries"`
	Error         string         `json:"error,omitempty"`
	// Holder is the lock token of the process that ran it.
	Holder string `json:"holder,omitempty"`
}

// Total is the number of records appended over every type.
func (r SyncRun) Total() int {
	n := 0
	for _, c := range r.Records {
		n += c
	}
	return n
}

// Sync errors callers branch on.
var (
	// ErrSyncInProgress: another process holds the integration's sync lock.
	ErrSyncInProgress = errors.New("a sync of this integration is already running")
	// ErrSyncAlreadyRan: a scheduled run found that another scheduled or
	// catch-up run started since it fell due.
	ErrSyncAlreadyRan = errors.New("a scheduled sync of this integration already ran since it fell due")
	// ErrSyncDisabled: the integration is inactive or has sync disabled.
	ErrSyncDisabled = errors.New("integration is inactive or sync is disabled")
	// ErrNoConnection: no SoftPro API connection is configured.
	ErrNoConnection = errors.New("no SoftPro API connection configured")
	// ErrLockLost: the run's lock expired or was taken over mid-run.
	ErrLockLost = errors.New("sync lock lost")
	// ErrNoProgress: the SoftPro API kept sending back cursors already
	// asked for, so paging would never end.
	ErrNoProgress = errors.New("softpro api pages without progress")
)

// QuotaWaitError refuses a scheduled or catch-up run while the shared
// SoftPro API quota stays empty for longer than a run waits
// (SyncConfig.MaxRateLimitWait): the run would fail without sending a
// request. AvailableIn is when the quota allows one again.
type QuotaWaitError struct{ AvailableIn time.Duration }

func (e *QuotaWaitError) Error() string {
	return fmt.Sprintf("the SoftPro API quota allows no request for %s, longer than a run waits", e.AvailableIn.Round(time.Second))
}

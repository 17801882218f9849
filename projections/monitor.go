package projections

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// SyncFacts are an integration's sync runs as health and metrics see them.
type SyncFacts struct {
	// LastRunAt is when the newest run started; LastSucceededAt when the
	// newest successful run finished. Nil when there is none.
	LastRunAt       *time.Time
	LastSucceededAt *time.Time
	// Succeeded and Failed count the runs finished since the window's
	// start; DurationMs sums their durations and Records the records
	// they appended.
	Succeeded, Failed int64
	DurationMs        int64
	Records           int64
}

// ErrorSummary is one error of an integration's failed events or sync
// runs in the window, with how often it occurred.
type ErrorSummary struct {
	// Source is "webhook" for events that failed projection (webhooks and
	// synced records alike), "sync" for failed sync runs.
	Source     string    `json:"source"`
	Error      string    `json:"error"`
	Count      int64     `json:"count"`
	LastSeenAt time.Time `json:"lastSeenAt"`
	// EventIDs (webhook) or RunIDs (sync) are the newest few affected.
	EventIDs []string `json:"eventIds"`
	RunIDs   []int64  `json:"runIds"`
}

// MonitorStore reads what health and metrics are made of beyond the
// audit counts.
type MonitorStore interface {
	// SyncFacts summarizes the integration's runs; Succeeded, Failed,
	// DurationMs and Records count those finished at or after since.
	// LastEventAt is when its newest audited event was received (nil if
	// none).
	SyncFacts(ctx context.Context, integrationID string, since time.Time) (facts SyncFacts, lastEventAt *time.Time, err error)
	// Hours returns the integration's hours from since on that had
	// finished events or finished sync runs.
	Hours(ctx context.Context, integrationID string, since time.Time) ([]HourFigures, error)
	// TopErrors returns the most frequent errors of the events received
	// and the sync runs finished at or after since, most frequent first,
	// at most limit, each with at most ids affected ids.
	TopErrors(ctx context.Context, integrationID string, since time.Time, limit, ids int) ([]ErrorSummary, error)
}

// CountSource counts audit rows per event type (the stats figures).
type CountSource interface {
	Stats(ctx context.Context, f StatsFilter) ([]Counts, error)
}

// PendingSource lists an integration's records not projected yet
// (Recovery).
type PendingSource interface {
	Pending(ctx context.Context, integrationID string, limit int64) (recs []PendingRecord, truncated bool, err error)
}

// Queue is an integration's queue: its events on the log that are waiting
// to be projected.
type Queue struct {
	// Depth counts them.
	Depth int64
	// Oldest and Newest are when the oldest and the newest of them were
	// appended; nil when there is none.
	Oldest, Newest *time.Time
	// Partial says the records were read from the last offsets of their
	// partitions only: Depth is at least the count, Oldest no older than
	// the true oldest.
	Partial bool
}

// QueueOf is the queue of the pending records, partial when the read that
// found them was truncated.
func QueueOf(recs []PendingRecord, truncated bool) Queue {
	q := Queue{Partial: truncated}
	for _, r := range recs {
		q.Depth++
		at := r.AppendedAt
		if q.Oldest == nil || at.Before(*q.Oldest) {
			q.Oldest = &at
		}
		if q.Newest == nil || at.After(*q.Newest) {
			q.Newest = &at
		}
	}
	return q
}

// Monitor answers an integration's health and metrics, the original
// system's getHealthStatus and getIntegrationMetrics, from the read
// models (audit, hourly metrics, sync runs) and the log. Safe for
// concurrent use.
type Monitor struct {
	d MonitorDeps
}

// MonitorDeps are a Monitor's collaborators, all required but Now
// (default time.Now).
type MonitorDeps struct {
	Syncs   SyncHistory
	Counts  CountSource
	Store   MonitorStore
	Pending PendingSource
	Now     func() time.Time
}

// NewMonitor returns a Monitor.
func NewMonitor(d MonitorDeps) *Monitor {
	if d.Syncs == nil || d.Counts == nil || d.Store == nil || d.Pending == nil {
		panic("projections: NewMonitor needs sync history, counts, a monitor store and a pending source")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Monitor{d: d}
}

// MonitorWindow is the window of the 24h figures.
const MonitorWindow = 24 * time.Hour

// UptimePeriods are the periods of the uptime figures.
var UptimePeriods = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// HealthReport is an integration's health with the figures it was decided
// on.
type HealthReport struct {
	IntegrationID string       `json:"integrationId"`
	Status        HealthStatus `json:"status"`
	Score         int          `json:"score"`
	CheckedAt     time.Time    `json:"checkedAt"`
	Active        bool         `json:"active"`
	// SyncExpected: the sync age counts (SyncInfo.ExpectsSync).
	SyncExpected bool `json:"syncExpected"`
	// LastEventAt is the newest event received: audited, or still
	// waiting on the log (its append time).
	LastEventAt        *time.Time `json:"lastEventAt"`
	LastSyncRunAt      *time.Time `json:"lastSyncRunAt"`
	LastSuccessfulSync *time.Time `json:"lastSuccessfulSync"`
	// ErrorRate is ErrorRate of the four counts below, all over the last
	// 24 hours (events by receipt, runs by finish).
	ErrorRate           float64 `json:"errorRate"`
	EventsFinished24h   int64   `json:"eventsFinished24h"`
	EventsFailed24h     int64   `json:"eventsFailed24h"`
	SyncRunsFinished24h int64   `json:"syncRunsFinished24h"`
	SyncRunsFailed24h   int64   `json:"syncRunsFailed24h"`
	// QueueDepth is the Queue's depth; QueueDepthPartial says it counts
	// only the last QueueScanLimit offsets of each partition (a larger
	// backlog), so the queue is at least that deep.
	QueueDepth        int64    `json:"queueDepth"`
	QueueDepthPartial bool     `json:"queueDepthPartial"`
	Reasons           []string `json:"reasons"`
}

// IntegrationMetrics are the original system's IntegrationMetrics, field
// for field, plus the integration, the time and the uptime of every
// period.
type IntegrationMetrics struct {
	IntegrationID      string       `json:"integrationId"`
	CheckedAt          time.Time    `json:"checkedAt"`
	ConnectionStatus   HealthStatus `json:"connectionStatus"`
	Score              int          `json:"score"`
	LastSuccessfulSync *time.Time   `json:"lastSuccessfulSync"`
	// Uptime is the 24h uptime (Uptime); UptimePeriods has 24h, 7d, 30d.
	Uptime        float64            `json:"uptime"`
	UptimePeriods map[string]float64 `json:"uptimePeriods"`
	// Webhook figures count the events received in the last 24 hours
	// whose type is not a synced record's: received, processed (COMPLETED
	// or SKIPPED), failed as a percentage of received, and the mean
	// processing time of the completed ones in ms.
	WebhooksReceived24h      int64   `json:"webhooksReceived24h"`
	WebhooksProcessed24h     int64   `json:"webhooksProcessed24h"`
	WebhookFailureRate       float64 `json:"webhookFailureRate"`
	AvgWebhookProcessingTime int64   `json:"avgWebhookProcessingTime"`
	// Sync figures count the runs finished in the last 24 hours; the
	// duration is the mean of those runs in ms, records what they
	// appended.
	SyncJobsCompleted24h int64 `json:"syncJobsCompleted24h"`
	SyncJobsFailed24h    int64 `json:"syncJobsFailed24h"`
	AvgSyncDuration      int64 `json:"avgSyncDuration"`
	RecordsSynced24h     int64 `json:"recordsSynced24h"`
	// QueueDepth and OldestPendingJob are the Queue's depth and oldest,
	// QueueDepthPartial as in HealthReport (the oldest counted, then).
	QueueDepth        int64          `json:"queueDepth"`
	QueueDepthPartial bool           `json:"queueDepthPartial"`
	OldestPendingJob  *time.Time     `json:"oldestPendingJob"`
	ErrorRate         float64        `json:"errorRate"`
	TopErrors         []ErrorSummary `json:"topErrors"`
}

// Top errors reported, and affected ids per error.
const (
	topErrors   = 5
	topErrorIDs = 5
	// pendingTimeout bounds the read of the integration's queue.
	pendingTimeout = 10 * time.Second
)

// QueueScanLimit is how many of each partition's last offsets the queue
// of one integration is counted in: a few hundred milliseconds of reading,
// so a large backlog makes the figure partial rather than the answer slow
// or unavailable.
const QueueScanLimit = 20000

// Health decides the integration's status. An unknown integration is an
// error wrapping domain.ErrNotFound.
func (m *Monitor) Health(ctx context.Context, integrationID string) (HealthReport, error) {
	o, err := m.observe(ctx, integrationID)
	return o.report, err
}

// observation is what Health decided and the figures Metrics adds to.
type observation struct {
	report  HealthReport
	counts  []Counts
	sync    SyncFacts
	pending Queue
}

// observe gathers the figures of the last MonitorWindow and decides the
// status on them. Records still waiting on the log count as webhooks
// received: a stalled projection is not a silent integration.
func (m *Monitor) observe(ctx context.Context, integrationID string) (observation, error) {
	fail := func(err error) (observation, error) {
		return observation{}, fmt.Errorf("health %s: %w", integrationID, err)
	}
	now := m.d.Now().UTC()
	since := now.Add(-MonitorWindow)
	// The counts first: their errors say whether the database is
	// unavailable; an unknown integration has none, and the sync info
	// then says it does not exist.
	counts, err := m.d.Counts.Stats(ctx, StatsFilter{IntegrationID: integrationID, Start: since, End: now})
	if err != nil {
		return fail(err)
	}
	info, err := m.d.Syncs.SyncInfo(ctx, integrationID)
	if err != nil {
		return fail(err)
	}
	sync, lastEvent, err := m.d.Store.SyncFacts(ctx, integrationID, since)
	if err != nil {
		return fail(err)
	}
	// The queue is read from the log (and the audit, for the events
	// settled already): a broker that does not answer in time makes the
	// answer unavailable, not wrong.
	pctx, cancel := context.WithTimeout(ctx, pendingTimeout)
	recs, truncated, err := m.d.Pending.Pending(pctx, integrationID, QueueScanLimit)
	cancel()
	if err != nil {
		return fail(Unavailable("read the log", err))
	}
	pending := QueueOf(recs, truncated)
	if pending.Newest != nil && (lastEvent == nil || pending.Newest.After(*lastEvent)) {
		lastEvent = pending.Newest
	}
	all := Total(counts, nil)
	finished := all.Completed + all.Failed + all.Skipped
	facts := HealthFacts{
		Active: info.Active, ExpectsSync: info.ExpectsSync(),
		LastEventAt: lastEvent, LastSyncRunAt: sync.LastRunAt, LastSuccessfulSync: sync.LastSucceededAt,
		ErrorRate: ErrorRate(all.Failed, finished, sync.Failed, sync.Succeeded+sync.Failed),
	}
	if info.Connected && !info.ConnectedAt.IsZero() {
		at := info.ConnectedAt.UTC()
		facts.ConnectedAt = &at
	}
	h := AssessHealth(facts, now)
	rep := HealthReport{
		IntegrationID: integrationID, Status: h.Status, Score: h.Score, CheckedAt: now,
		Active: facts.Active, SyncExpected: facts.ExpectsSync,
		LastEventAt: lastEvent, LastSyncRunAt: sync.LastRunAt, LastSuccessfulSync: sync.LastSucceededAt,
		ErrorRate: facts.ErrorRate, EventsFinished24h: finished, EventsFailed24h: all.Failed,
		SyncRunsFinished24h: sync.Succeeded + sync.Failed, SyncRunsFailed24h: sync.Failed,
		QueueDepth: pending.Depth, QueueDepthPartial: pending.Partial, Reasons: h.Reasons,
	}
	if rep.Reasons == nil {
		rep.Reasons = []string{}
	}
	return observation{report: rep, counts: counts, sync: sync, pending: pending}, nil
}

// Metrics gathers the integration's metrics. An unknown integration is an
// error wrapping domain.ErrNotFound.
func (m *Monitor) Metrics(ctx context.Context, integrationID string) (IntegrationMetrics, error) {
	o, err := m.observe(ctx, integrationID)
	if err != nil {
		return IntegrationMetrics{}, err
	}
	h, sync, pending := o.report, o.sync, o.pending
	fail := func(err error) (IntegrationMetrics, error) {
		return IntegrationMetrics{}, fmt.Errorf("metrics %s: %w", integrationID, err)
	}
	webhooks := Total(o.counts, func(t domain.EventType) bool { return t.Topic() != domain.TopicSync })
	longest := slices.Max(slices.Collect(maps.Values(UptimePeriods)))
	hours, err := m.d.Store.Hours(ctx, integrationID, h.CheckedAt.Truncate(time.Hour).Add(-longest))
	if err != nil {
		return fail(err)
	}
	errs, err := m.d.Store.TopErrors(ctx, integrationID, h.CheckedAt.Add(-MonitorWindow), topErrors, topErrorIDs)
	if err != nil {
		return fail(err)
	}
	out := IntegrationMetrics{
		IntegrationID: integrationID, CheckedAt: h.CheckedAt, ConnectionStatus: h.Status, Score: h.Score,
		LastSuccessfulSync:       h.LastSuccessfulSync,
		UptimePeriods:            map[string]float64{},
		WebhooksReceived24h:      webhooks.Received,
		WebhooksProcessed24h:     webhooks.Completed + webhooks.Skipped,
		WebhookFailureRate:       Percent(webhooks.Failed, webhooks.Received),
		AvgWebhookProcessingTime: webhooks.AvgProcessingMs(),
		SyncJobsCompleted24h:     sync.Succeeded,
		SyncJobsFailed24h:        sync.Failed,
		RecordsSynced24h:         sync.Records,
		QueueDepth:               pending.Depth,
		QueueDepthPartial:        pending.Partial,
		OldestPendingJob:         pending.Oldest,
		ErrorRate:                h.ErrorRate,
		TopErrors:                errs,
	}
	if n := sync.Succeeded + sync.Failed; n > 0 {
		out.AvgSyncDuration = int64(math.Round(float64(sync.DurationMs) / float64(n)))
	}
	for name, d := range UptimePeriods {
		out.UptimePeriods[name] = Uptime(hours, h.CheckedAt, d)
	}
	out.Uptime = out.UptimePeriods["24h"]
	if out.TopErrors == nil {
		out.TopErrors = []ErrorSummary{}
	}
	return out, nil
}

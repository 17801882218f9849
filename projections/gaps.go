package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Gap kinds, a wire contract of the gaps API.
const (
	// GapLogBehind: the integration has records on the log that its
	// projection has not applied for longer than the threshold.
	GapLogBehind = "log-behind"
	// GapPoisoned: events of the integration are FAILED (poisoned).
	GapPoisoned = "poisoned"
	// GapSyncFailed: the last scheduled sync failed.
	GapSyncFailed = "sync-failed"
	// GapSyncMissed: no sync ran for more than twice the integration's
	// frequency.
	GapSyncMissed = "sync-missed"
	// GapData: the SoftPro API reports changes in an hour that the read
	// models lack (a record missing, or older than the API's).
	GapData = "data"
	// GapReadModel: read-model rows disagree with the log (entity rows
	// deleted or edited, audit rows deleted behind the system's back),
	// found by Validate.
	GapReadModel = "read-model"
	// GapMetrics: hourly metrics rows disagree with the audit rows they
	// count (edited or deleted behind the system's back), found by
	// Validate.
	GapMetrics = "metrics"
)

// Sides of gap detection that need scheduled sync, named by NotChecked
// when it is not wired.
const (
	// SideSync: the schedule side (sync-failed, sync-missed gaps).
	SideSync = "sync"
	// SideData: the data side (data gaps), which asks the SoftPro API.
	SideData = "data"
)

// Fill methods of a gap.
const (
	FillReplay = "replay"
	FillRetry  = "retry"
	FillSync   = "sync"
	FillRefold = "refold"
	// FillSyncWindow: a sync from the start of the window.
	FillSyncWindow = "sync-window"
	// FillRecount: the metrics rows are counted again from the audit.
	FillRecount = "recount"
)

// Gap is a period or a set of rows the read models lack, and how it will be
// filled.
type Gap struct {
	Kind          string     `json:"kind"`
	IntegrationID string     `json:"integrationId"`
	Topic         string     `json:"topic,omitempty"`
	Partition     *int32     `json:"partition,omitempty"`
	From          *time.Time `json:"from,omitempty"`
	To            *time.Time `json:"to,omitempty"`
	// Missing says what is missing.
	Missing string `json:"missing"`
	// Records counts the records, events or rows concerned.
	Records int64 `json:"records"`
	// Fill says how gaps fill repairs it.
	Fill     string             `json:"fill"`
	Entities []domain.EntityKey `json:"-"`
	Metrics  []MetricsRow       `json:"-"`
	Issues   []Issue            `json:"issues,omitempty"`
}

// SyncRunInfo is one sync run as gap detection sees it.
type SyncRunInfo struct {
	Failed     bool
	StartedAt  time.Time
	FinishedAt *time.Time
	Error      string
}

// SyncInfo is an integration's sync configuration and newest runs.
type SyncInfo struct {
	// Active is the integration's switch; Enabled is sync enabled on an
	// active integration.
	Active  bool
	Enabled bool
	// Frequency is the interval between scheduled syncs.
	Frequency time.Duration
	// Connected is whether the integration has a SoftPro API connection;
	// ConnectedAt when it was stored (last changed).
	Connected   bool
	ConnectedAt time.Time
	// Runs are the newest runs, newest first.
	Runs []SyncRunInfo
}

// ExpectsSync reports whether the integration should be syncing: sync is
// enabled and a SoftPro API connection is stored. Gap detection looks for
// missed syncs, and health counts the sync age, only then.
func (s SyncInfo) ExpectsSync() bool { return s.Enabled && s.Connected }

// SyncHistory reads an integration's sync state (the sync_runs table).
type SyncHistory interface {
	SyncInfo(ctx context.Context, integrationID string) (SyncInfo, error)
}

// Syncer runs a sync of every type of an integration now, whatever types
// its scheduled syncs pull, and waits for it. With full,
// its watermarks are reset first, so every record is pulled again; with
// since set, watermarks later than since are moved back to it, so the
// records changed since then are pulled again.
type Syncer interface {
	SyncNow(ctx context.Context, integrationID string, since time.Time, full bool) (records int, err error)
}

// SourceRecord is one record as the SoftPro API reports it.
type SourceRecord struct {
	Kind      domain.Kind
	ID        string
	UpdatedAt time.Time
}

// SourceLister lists the records the SoftPro API reports changed since a
// time. It returns nil and no error for an integration without an API
// connection. A failure of the API itself (no answer, an error answer, a
// rate limit waited out, a refused token) it returns as a *SourceError;
// any other error (the database, the rate limiter's store) is its own.
type SourceLister interface {
	ChangedSince(ctx context.Context, integrationID string, since time.Time) ([]SourceRecord, error)
}

// SourceError is the SoftPro API's failure to answer a SourceLister. Gap
// detection then leaves the data side out, naming it in NotChecked with
// the error as the reason, and still checks every other side.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// FailedCounter counts an integration's FAILED events.
type FailedCounter interface {
	FailedEvents(ctx context.Context, integrationID string) (n int64, from, to time.Time, err error)
}

// SettledLookup tells which events are done with.
type SettledLookup interface {
	// Settled returns those of the integration's event ids whose audit
	// row is COMPLETED, SKIPPED or FAILED.
	Settled(ctx context.Context, integrationID string, eventIDs []string) (map[string]bool, error)
}

// FailedRetrier appends an integration's FAILED events again (Retrier).
type FailedRetrier interface {
	RetryFailed(ctx context.Context, integrationID string, eventIDs []string, correlationID string) (int, error)
}

// GapConfig tunes gap detection.
type GapConfig struct {
	// Behind is how long a projection may lag before it is a gap (default
	// 5 minutes).
	Behind time.Duration
	// Topics and Names are the projected topics and their projection
	// names, as for a Rebuilder.
	Topics []string
	Names  map[string]string
	// ScanLimit bounds the offsets read to tell an integration's unapplied
	// records (default 200000 per partition).
	ScanLimit int64
	// DataWindow is how far back the data side asks the SoftPro API for
	// changes (default 24 hours).
	DataWindow time.Duration
}

// Recovery finds and fills gaps, validates and resyncs integrations. The
// sync collaborators may be nil: the schedule side is then not checked,
// and resync is unavailable.
type Recovery struct {
	cfg      GapConfig
	log      LogScanner
	status   StatusSource
	store    ConsistencyStore
	failed   FailedCounter
	retrier  FailedRetrier
	replayer *Replayer
	syncs    SyncHistory
	syncer   Syncer
	source   SourceLister
	settled  SettledLookup
	now      func() time.Time
}

// RecoveryDeps are Recovery's collaborators; Syncs and Syncer may be nil.
type RecoveryDeps struct {
	Log      LogScanner
	Status   StatusSource
	Store    ConsistencyStore
	Failed   FailedCounter
	Retrier  FailedRetrier
	Replayer *Replayer
	// Settled tells which events past the checkpoints are done with
	// already (a dead letter, a copy of an applied event).
	Settled SettledLookup
	Syncs   SyncHistory
	Syncer  Syncer
	// Source, when set, is the SoftPro API for the data side.
	Source SourceLister
}

// ErrNoSync is returned by operations that need scheduled sync when it is
// not wired.
var ErrNoSync = errors.New("scheduled sync is not available")

// NewRecovery returns a Recovery.
func NewRecovery(cfg GapConfig, d RecoveryDeps) *Recovery {
	if d.Log == nil || d.Status == nil || d.Store == nil || d.Failed == nil || d.Retrier == nil || d.Replayer == nil || d.Settled == nil {
		panic("projections: NewRecovery needs a log, status, store, failed counter, retrier, replayer and settled lookup")
	}
	if cfg.Behind == 0 {
		cfg.Behind = 5 * time.Minute
	}
	if cfg.Topics == nil {
		cfg.Topics = domain.EventTopics
	}
	if cfg.ScanLimit == 0 {
		cfg.ScanLimit = 200000
	}
	if cfg.DataWindow == 0 {
		cfg.DataWindow = 24 * time.Hour
	}
	return &Recovery{cfg: cfg, log: d.Log, status: d.Status, store: d.Store, failed: d.Failed, retrier: d.Retrier,
		replayer: d.Replayer, syncs: d.Syncs, syncer: d.Syncer, source: d.Source, settled: d.Settled, now: time.Now}
}

// NotChecked names the sides Gaps leaves out because their collaborators
// are not wired (SideSync, SideData); nil when every side is wired. Gaps
// may leave out the data side of one integration as well, when the
// SoftPro API fails it (GapReport.NotChecked).
func (r *Recovery) NotChecked() []string {
	var out []string
	if r.syncs == nil {
		out = append(out, SideSync)
	}
	if r.source == nil {
		out = append(out, SideData)
	}
	return out
}

// Validate checks the integration's read models against the log.
func (r *Recovery) Validate(ctx context.Context, integrationID string) (ConsistencyReport, error) {
	return Validate(ctx, r.store, r.log, integrationID, r.cfg.Topics)
}

// GapReport is what gap detection found for one integration, and which
// sides it could not look at.
type GapReport struct {
	IntegrationID string `json:"integrationId"`
	Gaps          []Gap  `json:"gaps"`
	// NotChecked names the sides whose gaps were not looked for (SideSync,
	// SideData): those not wired (Recovery.NotChecked), and the data side
	// when the SoftPro API failed to answer.
	NotChecked []string `json:"notChecked,omitempty"`
	// NotCheckedReasons says, for each side of NotChecked, why.
	NotCheckedReasons map[string]string `json:"notCheckedReasons,omitempty"`
}

// notChecked adds side to NotChecked with its reason.
func (g *GapReport) notChecked(side, reason string) {
	g.NotChecked = append(g.NotChecked, side)
	if g.NotCheckedReasons == nil {
		g.NotCheckedReasons = map[string]string{}
	}
	g.NotCheckedReasons[side] = reason
}

// Gaps finds the integration's gaps on every side this process can see:
// the log (unapplied and poisoned records), the schedule (failed or
// missed syncs), the data (records the SoftPro API has and the read models
// lack) and the read models (rows that disagree with the log). The report
// names the sides it cannot see, with why: those not wired, and the data
// side when the SoftPro API fails (a *SourceError), whose failure leaves
// the other sides checked. Any other failure (the database, the log) fails
// the whole.
func (r *Recovery) Gaps(ctx context.Context, integrationID string) (GapReport, error) {
	out := GapReport{IntegrationID: integrationID}
	for _, side := range r.NotChecked() {
		out.notChecked(side, ErrNoSync.Error())
	}
	gaps := []Gap{}
	logGaps, err := r.logGaps(ctx, integrationID)
	if err != nil {
		return GapReport{}, err
	}
	gaps = append(gaps, logGaps...)
	n, from, to, err := r.failed.FailedEvents(ctx, integrationID)
	if err != nil {
		return GapReport{}, err
	}
	if n > 0 {
		gaps = append(gaps, Gap{Kind: GapPoisoned, IntegrationID: integrationID, From: &from, To: &to, Records: n,
			Missing: fmt.Sprintf("%d FAILED events are not in the read models", n), Fill: FillRetry})
	}
	if r.syncs != nil {
		g, err := r.syncGaps(ctx, integrationID)
		if err != nil {
			return GapReport{}, err
		}
		gaps = append(gaps, g...)
	}
	if r.source != nil {
		g, err := r.dataGaps(ctx, integrationID)
		var source *SourceError
		switch {
		case err == nil:
			gaps = append(gaps, g...)
		case errors.As(err, &source) && ctx.Err() == nil:
			// The API does not answer: every other side is still
			// checked, and this one is named as not checked.
			out.notChecked(SideData, err.Error())
		default:
			return GapReport{}, fmt.Errorf("gaps %s: %w", integrationID, err)
		}
	}
	rep, err := r.Validate(ctx, integrationID)
	if err != nil {
		return GapReport{}, err
	}
	var keys []domain.EntityKey
	var issues, metricsIssues []Issue
	var rows []MetricsRow
	var lost, misfiled int64
	for _, is := range rep.Issues {
		switch is.Kind {
		case IssueMetrics:
			metricsIssues = append(metricsIssues, is)
			rows = append(rows, MetricsRow{IntegrationID: integrationID, EventType: is.EventType, Hour: *is.Hour})
		case IssueMissing, IssueDiffers:
			keys = append(keys, is.Key(integrationID))
			issues = append(issues, is)
		case IssueAuditCount:
			// Fewer audit rows than the log has events: a replay of the
			// log restores them. (Extra ones are not the log's.)
			if is.lost > 0 {
				lost += is.lost
				issues = append(issues, is)
			}
		case IssueAuditMisfiled:
			misfiled++
			issues = append(issues, is)
		}
	}
	if len(issues) > 0 {
		var missing []string
		if len(keys) > 0 {
			missing = append(missing, fmt.Sprintf("%d entities missing or differing from the log", len(keys)))
		}
		if lost > 0 {
			missing = append(missing, fmt.Sprintf("%d audit rows missing", lost))
		}
		if misfiled > 0 {
			missing = append(missing, fmt.Sprintf("%d audit rows filed under another event type or hour of receipt", misfiled))
		}
		gaps = append(gaps, Gap{Kind: GapReadModel, IntegrationID: integrationID, Records: int64(len(keys)) + lost + misfiled,
			Missing: strings.Join(missing, "; "), Fill: FillRefold, Entities: keys, Issues: issues})
	}
	if len(rows) > 0 {
		gaps = append(gaps, Gap{Kind: GapMetrics, IntegrationID: integrationID, Records: int64(len(rows)),
			Missing: fmt.Sprintf("%d hourly metrics rows disagree with the audit", len(rows)), Fill: FillRecount,
			Metrics: rows, Issues: metricsIssues})
	}
	out.Gaps = gaps
	return out, nil
}

// unapplied calls fn with each of the integration's records that its
// projection has not applied: per topic, those past the projection's
// checkpoint in the partition holding the integration's key (or past the
// log start where there is no checkpoint yet), at most limit offsets
// behind the partition's end. cut names the partitions the limit left
// some out of.
func (r *Recovery) unapplied(ctx context.Context, integrationID string, limit int64, fn func(ScannedRecord)) (cut map[Partition]bool, err error) {
	bounds, err := r.log.Bounds(ctx, r.cfg.Topics, time.Time{}, time.Time{})
	if err != nil {
		return nil, err
	}
	bounds = onlyIntegration(bounds, r.log, integrationID)
	cps, err := r.status.ProjectionCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	next := map[Partition]int64{}
	for _, c := range cps {
		if r.cfg.Names[c.Topic] == c.Projection {
			next[c.Partition] = c.Next
		}
	}
	rest := bounds.From(next)
	cut = map[Partition]bool{}
	for p, s := range rest.Start {
		// Bound the read; a projection that far behind is a gap anyway.
		if s < rest.End[p]-limit {
			rest.Start[p], cut[p] = rest.End[p]-limit, true
		}
	}
	return cut, r.log.Scan(ctx, ScanRequest{Bounds: rest, IntegrationID: integrationID, BatchSize: 2000}, func(recs []ScannedRecord) error {
		for _, rec := range recs {
			fn(rec)
		}
		return nil
	})
}

// PendingRecord is one of an integration's records on the log that its
// projection has not applied.
type PendingRecord struct {
	EventID   string
	Partition Partition
	// AppendedAt is when the record was appended.
	AppendedAt time.Time
}

// Pending lists the integration's events on the log its projections have
// not applied yet (see unapplied for the partitions and the bound), in log
// order per partition. A record whose event is settled already (COMPLETED,
// SKIPPED or FAILED) waits for nothing and is left out: a dead letter the
// poison queue took stays past its partition's checkpoint until a later
// record of the partition fills the hole, and a second copy of an applied
// event may sit there too. A record that is not an event never reaches
// the audit (the poison queue takes it) and is left out as well. Only the
// last limit offsets of each partition are read (ScanLimit when limit is
// 0); truncated says records before them were left out.
func (r *Recovery) Pending(ctx context.Context, integrationID string, limit int64) (recs []PendingRecord, truncated bool, err error) {
	recs, cut, err := r.pending(ctx, integrationID, limit)
	return recs, len(cut) > 0, err
}

// pending is Pending naming the partitions the limit cut.
func (r *Recovery) pending(ctx context.Context, integrationID string, limit int64) (recs []PendingRecord, cut map[Partition]bool, err error) {
	if limit <= 0 {
		limit = r.cfg.ScanLimit
	}
	cut, err = r.unapplied(ctx, integrationID, limit, func(rec ScannedRecord) {
		if rec.Err != nil {
			return
		}
		recs = append(recs, PendingRecord{EventID: rec.Envelope.EventID, Partition: rec.Partition, AppendedAt: rec.Timestamp.UTC()})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("pending %s: %w", integrationID, err)
	}
	if len(recs) == 0 {
		return nil, cut, nil
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.EventID
	}
	settled, err := r.settled.Settled(ctx, integrationID, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("pending %s: %w", integrationID, err)
	}
	return slices.DeleteFunc(recs, func(rec PendingRecord) bool { return settled[rec.EventID] }), cut, nil
}

// logGaps: per topic, the integration's pending records (see Pending) that
// have waited longer than the threshold.
func (r *Recovery) logGaps(ctx context.Context, integrationID string) ([]Gap, error) {
	cutoff := r.now().Add(-r.cfg.Behind)
	type span struct {
		n        int64
		from, to time.Time
	}
	recs, cut, err := r.pending(ctx, integrationID, r.cfg.ScanLimit)
	if err != nil {
		return nil, fmt.Errorf("gaps %s: %w", integrationID, err)
	}
	spans := map[Partition]*span{}
	for _, rec := range recs {
		if rec.AppendedAt.After(cutoff) {
			continue
		}
		s := spans[rec.Partition]
		if s == nil {
			s = &span{from: rec.AppendedAt}
			spans[rec.Partition] = s
		}
		s.n++
		s.to = rec.AppendedAt
	}
	var out []Gap
	for p, s := range spans {
		part := p.Partition
		from, to := s.from.UTC(), s.to.UTC()
		g := Gap{Kind: GapLogBehind, IntegrationID: integrationID, Topic: p.Topic, Partition: &part,
			From: &from, To: &to, Records: s.n, Fill: FillReplay,
			Missing: fmt.Sprintf("%d records of %s not projected by %s for over %v", s.n, p.Topic, r.cfg.Names[p.Topic], r.cfg.Behind)}
		if cut[p] {
			// Records before the offsets read may be unapplied too: the
			// count is a floor, and the fill replays from the log's start.
			g.From = nil
			g.Missing = fmt.Sprintf("at least %s; only the last %d offsets of each partition were read, so the fill replays from the log's start",
				g.Missing, r.cfg.ScanLimit)
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Gap) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(*a.Partition, *b.Partition))
	})
	return out, nil
}

func (r *Recovery) syncGaps(ctx context.Context, integrationID string) ([]Gap, error) {
	info, err := r.syncs.SyncInfo(ctx, integrationID)
	if err != nil {
		return nil, fmt.Errorf("gaps %s: sync runs: %w", integrationID, err)
	}
	if !info.Connected {
		return nil, nil
	}
	now := r.now().UTC()
	var lastOK *time.Time
	for _, run := range info.Runs {
		if !run.Failed && run.FinishedAt != nil {
			lastOK = run.FinishedAt
			break
		}
	}
	var out []Gap
	if len(info.Runs) > 0 && info.Runs[0].Failed {
		from := info.Runs[0].StartedAt
		if lastOK != nil {
			from = *lastOK
		}
		to := now
		out = append(out, Gap{Kind: GapSyncFailed, IntegrationID: integrationID, From: &from, To: &to, Fill: FillSync,
			Missing: "SoftPro changes since the last good sync: the last run failed: " + info.Runs[0].Error})
	}
	if info.ExpectsSync() && info.Frequency > 0 {
		var last time.Time
		if len(info.Runs) > 0 {
			last = info.Runs[0].StartedAt
		}
		// Syncs are due from when the connection was stored, as health's
		// sync age counts: one stored a minute ago has missed none.
		if now.Sub(maxTime(last, info.ConnectedAt)) > 2*info.Frequency {
			from := last
			to := now
			g := Gap{Kind: GapSyncMissed, IntegrationID: integrationID, To: &to, Fill: FillSync,
				Missing: fmt.Sprintf("no sync ran for over twice the %v frequency", info.Frequency)}
			if !last.IsZero() {
				g.From = &from
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// dataGaps asks the SoftPro API for the records changed within the data
// window and reports, per hour of their updated_at, those the read models
// lack or hold in an older state.
func (r *Recovery) dataGaps(ctx context.Context, integrationID string) ([]Gap, error) {
	since := r.now().Add(-r.cfg.DataWindow).UTC()
	recs, err := r.source.ChangedSince(ctx, integrationID, since)
	if err != nil {
		return nil, fmt.Errorf("softpro api: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	rows, err := r.store.EntityRows(ctx, integrationID)
	if err != nil {
		return nil, err
	}
	have := make(map[domain.EntityKey]time.Time, len(rows))
	for _, e := range rows {
		have[e.Key] = e.UpdatedAt
	}
	missing := map[time.Time]int64{}
	for _, rec := range recs {
		at, ok := have[domain.EntityKey{IntegrationID: integrationID, Kind: rec.Kind, ID: rec.ID}]
		if !ok || at.Before(rec.UpdatedAt.Truncate(time.Microsecond)) {
			missing[rec.UpdatedAt.UTC().Truncate(time.Hour)]++
		}
	}
	hours := make([]time.Time, 0, len(missing))
	for h := range missing {
		hours = append(hours, h)
	}
	slices.SortFunc(hours, time.Time.Compare)
	out := make([]Gap, 0, len(hours))
	for _, h := range hours {
		from, to := h, h.Add(time.Hour)
		out = append(out, Gap{Kind: GapData, IntegrationID: integrationID, From: &from, To: &to, Records: missing[h], Fill: FillSyncWindow,
			Missing: fmt.Sprintf("%d records SoftPro changed in this hour are missing or older in the read models", missing[h])})
	}
	return out, nil
}

// FillReport says what gaps fill did.
type FillReport struct {
	IntegrationID string         `json:"integrationId"`
	Gaps          []Gap          `json:"gaps"`
	Replayed      []ReplayReport `json:"replayed"`
	Retried       int            `json:"retried"`
	Synced        int            `json:"synced"`
	Recounted     int            `json:"recounted"`
	// AuditRefiled counts the audit rows filed back under the event type
	// and time of receipt the log gives them.
	AuditRefiled int      `json:"auditRefiled"`
	Errors       []string `json:"errors,omitempty"`
	// NotChecked names the sides whose gaps were neither looked for nor
	// filled (GapReport.NotChecked), and NotCheckedReasons says why.
	NotChecked        []string          `json:"notChecked,omitempty"`
	NotCheckedReasons map[string]string `json:"notCheckedReasons,omitempty"`
	// Partial is set when the fill left something undone: a gap it could
	// not fill (Errors), or a side it could not check because it failed
	// (the data side while the SoftPro API does not answer). The sides
	// left out because they are not wired (Recovery.NotChecked) are left
	// out by configuration, and do not make a fill partial.
	Partial bool `json:"partial"`
}

// Fill finds the integration's gaps and fills each: log-side ones by
// replaying their window, poisoned events by appending them again,
// schedule- and data-side ones by a sync now whose records it then
// replays, and read-model ones by folding the named entities again from
// the whole log. A gap that cannot be filled is
// reported in Errors; the others are still filled. A side Gaps could not
// check (the data side while the SoftPro API does not answer) is named in
// NotChecked, with why, and the gaps of the others are still filled.
func (r *Recovery) Fill(ctx context.Context, integrationID, correlationID string) (FillReport, error) {
	rep := FillReport{IntegrationID: integrationID, Replayed: []ReplayReport{}, NotChecked: r.NotChecked()}
	found, err := r.Gaps(ctx, integrationID)
	if err != nil {
		return rep, err
	}
	gaps := found.Gaps
	rep.Gaps, rep.NotChecked, rep.NotCheckedReasons = gaps, found.NotChecked, found.NotCheckedReasons
	synced := false
	// One sync covers every schedule- and data-side gap: from the earliest
	// data gap, or from the watermarks.
	var since time.Time
	for _, g := range gaps {
		if g.Fill == FillSyncWindow && (since.IsZero() || g.From.Before(since)) {
			since = *g.From
		}
	}
	for _, g := range gaps {
		var err error
		switch g.Fill {
		case FillReplay:
			var rr ReplayReport
			var from time.Time // the log's start when the gap names none
			if g.From != nil {
				from = *g.From
			}
			rr, err = r.replayer.Replay(ctx, ReplayRequest{IntegrationID: integrationID, Topics: []string{g.Topic},
				From: from, To: g.To.Add(time.Millisecond)})
			rep.Replayed = append(rep.Replayed, rr)
		case FillRetry:
			var n int
			n, err = r.retrier.RetryFailed(ctx, integrationID, nil, correlationID)
			rep.Retried += n
		case FillSync, FillSyncWindow:
			if synced {
				continue
			}
			if r.syncer == nil {
				err = ErrNoSync
				break
			}
			synced = true
			// The sync's records are applied here, not left to the live
			// projectors, which may not run (or may be the gap).
			started := time.Now().Add(-time.Second)
			var n int
			n, err = r.syncer.SyncNow(ctx, integrationID, since, false)
			rep.Synced += n
			if n == 0 || ctx.Err() != nil {
				break
			}
			// What a run that failed part way appended is applied too.
			rr, rerr := r.replayer.Replay(ctx, ReplayRequest{IntegrationID: integrationID, Topics: []string{domain.TopicSync}, From: started})
			rep.Replayed = append(rep.Replayed, rr)
			err = errors.Join(err, rerr)
		case FillRefold:
			var n int
			n, err = r.refile(ctx, integrationID, g.Issues)
			rep.AuditRefiled += n
			if err != nil {
				break
			}
			var rr ReplayReport
			rr, err = r.replayer.Replay(ctx, ReplayRequest{IntegrationID: integrationID, Topics: r.cfg.Topics, Refold: g.Entities})
			rep.Replayed = append(rep.Replayed, rr)
		case FillRecount:
			if err = r.replayer.Recount(ctx, g.Metrics); err == nil {
				rep.Recounted += len(g.Metrics)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", g.Kind, err))
		}
	}
	notWired := r.NotChecked()
	rep.Partial = len(rep.Errors) > 0 || slices.ContainsFunc(rep.NotChecked, func(side string) bool { return !slices.Contains(notWired, side) })
	return rep, nil
}

// refile files the audit rows of the audit-misfiled issues back as the
// log has them, then counts the hourly metrics rows of the buckets they
// return to again from the audit (those of the buckets they were found in
// never counted them), and returns how many rows it changed.
func (r *Recovery) refile(ctx context.Context, integrationID string, issues []Issue) (int, error) {
	var refs []AuditRef
	var rows []MetricsRow
	for _, is := range issues {
		if is.refile == nil {
			continue
		}
		refs = append(refs, *is.refile)
		b := is.refile.bucket()
		rows = append(rows, MetricsRow{IntegrationID: integrationID, EventType: b.Type, Hour: b.Hour})
	}
	if len(refs) == 0 {
		return 0, nil
	}
	n, err := r.store.RefileAudit(ctx, integrationID, refs)
	if err != nil {
		return n, fmt.Errorf("refile audit rows: %w", err)
	}
	return n, r.replayer.Recount(ctx, rows)
}

// ResyncReport says what a full resync did.
type ResyncReport struct {
	IntegrationID string       `json:"integrationId"`
	Synced        int          `json:"synced"`
	Replay        ReplayReport `json:"replay"`
	// AuditRefiled counts the audit rows filed back under the event type
	// and time of receipt the log gives them; Recounted, the hourly metrics
	// rows counted again from the audit.
	AuditRefiled int `json:"auditRefiled"`
	Recounted    int `json:"recounted"`
	// Consistency is the integration's report after the resync.
	Consistency ConsistencyReport `json:"consistency"`
}

// Resync is the emergency path: pull every record of the integration from
// the SoftPro API into the log (source sync), then bring its read models
// back to what its whole log says, as gaps fill does for the read-model
// side: audit rows filed back, the log applied again with every entity
// that disagrees with it folded again (missing audit rows restored), the
// hourly metrics rows that disagree with the audit counted again; and
// validate.
func (r *Recovery) Resync(ctx context.Context, integrationID string) (ResyncReport, error) {
	rep := ResyncReport{IntegrationID: integrationID}
	if r.syncer == nil {
		return rep, ErrNoSync
	}
	n, err := r.syncer.SyncNow(ctx, integrationID, time.Time{}, true)
	rep.Synced = n
	if err != nil {
		return rep, fmt.Errorf("resync %s: %w", integrationID, err)
	}
	before, err := r.Validate(ctx, integrationID)
	if err != nil {
		return rep, fmt.Errorf("resync %s: %w", integrationID, err)
	}
	var keys []domain.EntityKey
	var metrics []MetricsRow
	for _, is := range before.Issues {
		switch is.Kind {
		case IssueMissing, IssueDiffers:
			keys = append(keys, is.Key(integrationID))
		case IssueMetrics:
			metrics = append(metrics, MetricsRow{IntegrationID: integrationID, EventType: is.EventType, Hour: *is.Hour})
		}
	}
	if rep.AuditRefiled, err = r.refile(ctx, integrationID, before.Issues); err != nil {
		return rep, fmt.Errorf("resync %s: %w", integrationID, err)
	}
	rep.Replay, err = r.replayer.Replay(ctx, ReplayRequest{IntegrationID: integrationID, Topics: r.cfg.Topics, Refold: keys})
	if err != nil {
		return rep, fmt.Errorf("resync %s: %w", integrationID, err)
	}
	// Rows of hours whose audit agreed with the log: the replay above
	// counts the audit rows it restores itself.
	if len(metrics) > 0 {
		if err := r.replayer.Recount(ctx, metrics); err != nil {
			return rep, fmt.Errorf("resync %s: %w", integrationID, err)
		}
		rep.Recounted = len(metrics)
	}
	rep.Consistency, err = r.Validate(ctx, integrationID)
	if err != nil {
		return rep, fmt.Errorf("resync %s: %w", integrationID, err)
	}
	return rep, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

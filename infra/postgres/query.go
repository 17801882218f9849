package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// QueryStore answers the management and query API from the read models of
// migration 00002 (indexes in 00020) and claims FAILED events for manual
// retries. It is safe for concurrent use. Errors that say the database
// could not do the work (unreachable, overloaded, shutting down, a
// statement cancelled) wrap projections.ErrUnavailable, as
// ProjectionStore's do.
//
// Counts over the audit (the events list's total, stats) add whole hours
// from integration_metrics_hourly, which the projector keeps in the same
// transaction as the audit rows, to the partial hours at either end of the
// range counted from webhook_events: exact, and independent of how many
// events the whole hours hold.
type QueryStore struct {
	pool *pgxpool.Pool
}

var _ projections.RetryStore = (*QueryStore)(nil)

// NewQueryStore returns a store over pool; the pool's search_path decides
// which schema it reads.
func NewQueryStore(pool *pgxpool.Pool) *QueryStore {
	if pool == nil {
		panic("postgres: NewQueryStore needs a pool")
	}
	return &QueryStore{pool: pool}
}

// args collects positional query arguments.
type args []any

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

func joinWhere(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

const eventListColumns = `id::text, integration_id, event_id, event_type, status, received_at, processing_started_at,
 processed_at, failed_at, processing_time_ms, retry_count, last_retry_at, error, occurred_at, applied, source, topic,
 "partition", "offset"`

func scanEvent(row pgx.Row, withPayload bool) (projections.EventRow, error) {
	var r projections.EventRow
	var typ, status, source string
	var errText *string
	var occurred *time.Time
	var payload, headers []byte
	dest := []any{&r.ID, &r.IntegrationID, &r.EventID, &typ, &status, &r.ReceivedAt, &r.ProcessingStartedAt,
		&r.ProcessedAt, &r.FailedAt, &r.ProcessingTimeMs, &r.RetryCount, &r.LastRetryAt, &errText, &occurred, &r.Applied,
		&source, &r.Topic, &r.Partition, &r.Offset}
	if withPayload {
		dest = append(dest, &payload, &headers)
	}
	if err := row.Scan(dest...); err != nil {
		return r, err
	}
	r.EventType, r.Status, r.Source = domain.EventType(typ), projections.Status(status), domain.Source(source)
	if errText != nil {
		r.Error = *errText
	}
	if occurred != nil {
		r.OccurredAt = *occurred
	}
	r.Payload, r.Headers = payload, headers
	return r, nil
}

// eventConds are the conditions of f on webhook_events.
func eventConds(f projections.EventFilter, a *args) []string {
	var conds []string
	if f.IntegrationID != "" {
		conds = append(conds, "integration_id = "+a.add(f.IntegrationID))
	}
	if f.EventType != "" {
		conds = append(conds, "event_type = "+a.add(string(f.EventType)))
	}
	if f.Status != "" {
		conds = append(conds, "status = "+a.add(string(f.Status)))
	}
	if !f.Start.IsZero() {
		conds = append(conds, "received_at >= "+a.add(f.Start))
	}
	if !f.End.IsZero() {
		conds = append(conds, "received_at <= "+a.add(f.End))
	}
	return conds
}

// Events returns one page of audit rows, newest first, and how many match.
func (s *QueryStore) Events(ctx context.Context, f projections.EventFilter) (projections.EventPage, error) {
	var a args
	conds := eventConds(f, &a)
	// Ordered by the table's uuid id, not the text the list selects, so
	// the index on (received_at, id) gives the order without a sort.
	q := "SELECT " + eventListColumns + " FROM webhook_events" + joinWhere(conds) +
		" ORDER BY received_at DESC, webhook_events.id DESC LIMIT " + a.add(f.Limit) + " OFFSET " + a.add(int64(max(f.Page-1, 0))*int64(f.Limit))
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return projections.EventPage{}, classifyQuery("list events", err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projections.EventRow, error) { return scanEvent(r, false) })
	if err != nil {
		return projections.EventPage{}, classifyQuery("list events", err)
	}
	total, err := s.countEvents(ctx, f)
	if err != nil {
		return projections.EventPage{}, err
	}
	return projections.EventPage{Events: events, Total: total}, nil
}

// countEvents counts the rows matching f: whole hours from the hourly
// metrics (one column of them), the partial hours at either end from the
// audit. RECEIVED and PROCESSING are one figure in the hourly metrics, so
// filtering on either counts the audit.
func (s *QueryStore) countEvents(ctx context.Context, f projections.EventFilter) (int64, error) {
	var n int64
	add := func(row pgx.Row) error {
		var v int64
		err := row.Scan(&v)
		n += v
		return err
	}
	b := &pgx.Batch{}
	column, ok := map[projections.Status]string{"": "received", projections.StatusCompleted: "completed",
		projections.StatusFailed: "failed", projections.StatusSkipped: "skipped"}[f.Status]
	if !ok {
		var a args
		b.Queue("SELECT count(*) FROM webhook_events"+joinWhere(eventConds(f, &a)), a...).QueryRow(add)
	} else {
		hi := f.End
		if !hi.IsZero() {
			hi = hi.Add(time.Microsecond) // inclusive, at Postgres' resolution
		}
		hrs, whole, partial := splitHours(f.Start, hi)
		if whole {
			var a args
			table, conds := metricsWhere(f.IntegrationID, f.EventType, hrs, &a)
			b.Queue("SELECT coalesce(sum("+column+"), 0)::bigint FROM "+table+joinWhere(conds), a...).QueryRow(add)
		}
		for _, p := range partial {
			var a args
			part := f
			part.Start, part.End = p[0], p[1].Add(-time.Microsecond)
			b.Queue("SELECT count(*) FROM webhook_events"+joinWhere(eventConds(part, &a)), a...).QueryRow(add)
		}
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, classifyQuery("count events", err)
	}
	return n, nil
}

// Stats returns per event type figures of the events received in
// [f.Start, f.End).
func (s *QueryStore) Stats(ctx context.Context, f projections.StatsFilter) ([]projections.Counts, error) {
	counts, err := s.counts(ctx, f.IntegrationID, "", f.Start, f.End)
	if err != nil {
		return nil, classifyQuery("stats", err)
	}
	return counts, nil
}

// hourRange is a range of whole UTC hours [lo, hi); a nil bound is open.
// (A bound is never left zero to mean open: the first hour of year 1 is
// the zero time.)
type hourRange struct {
	lo, hi *time.Time
}

// splitHours divides [lo, hi) (a zero bound is open) into whole UTC hours
// and the partial ranges outside them.
func splitHours(lo, hi time.Time) (hours hourRange, whole bool, partial [][2]time.Time) {
	if !lo.IsZero() {
		hLo := lo.Truncate(time.Hour)
		if hLo.Before(lo) {
			hLo = hLo.Add(time.Hour)
		}
		hours.lo = &hLo
	}
	if !hi.IsZero() {
		hHi := hi.Truncate(time.Hour)
		hours.hi = &hHi
	}
	if hours.lo != nil && hours.hi != nil && !hours.lo.Before(*hours.hi) {
		if lo.Before(hi) {
			partial = append(partial, [2]time.Time{lo, hi})
		}
		return hourRange{}, false, partial
	}
	if hours.lo != nil && lo.Before(*hours.lo) {
		partial = append(partial, [2]time.Time{lo, *hours.lo})
	}
	if hours.hi != nil && hours.hi.Before(hi) {
		partial = append(partial, [2]time.Time{*hours.hi, hi})
	}
	return hours, true, partial
}

// metricsWhere is where the hourly metrics of hrs are summed from: one
// integration's rows, or the totals over every integration (integrationID
// empty); and the conditions selecting typ (every type when empty) and the
// hours.
func metricsWhere(integrationID string, typ domain.EventType, hrs hourRange, a *args) (table string, conds []string) {
	table = "metrics_hourly_totals"
	if integrationID != "" {
		table = "integration_metrics_hourly"
		conds = append(conds, "integration_id = "+a.add(integrationID))
	}
	if typ != "" {
		conds = append(conds, "event_type = "+a.add(string(typ)))
	}
	if hrs.lo != nil {
		conds = append(conds, "hour >= "+a.add(*hrs.lo))
	}
	if hrs.hi != nil {
		conds = append(conds, "hour < "+a.add(*hrs.hi))
	}
	return table, conds
}

// counts adds the hourly metrics of the whole hours in [lo, hi) to the
// audit rows of the partial hours, per event type.
func (s *QueryStore) counts(ctx context.Context, integrationID string, typ domain.EventType, lo, hi time.Time) ([]projections.Counts, error) {
	hrs, hours, partial := splitHours(lo, hi)
	b := &pgx.Batch{}
	byType := map[domain.EventType]*projections.Counts{}
	var order []domain.EventType
	collect := func(rows pgx.Rows) error {
		for rows.Next() {
			var c projections.Counts
			var t string
			if err := rows.Scan(&t, &c.Received, &c.Completed, &c.Failed, &c.Skipped, &c.ProcessingMs); err != nil {
				return err
			}
			c.EventType = domain.EventType(t)
			acc, ok := byType[c.EventType]
			if !ok {
				acc = &projections.Counts{EventType: c.EventType}
				byType[c.EventType] = acc
				order = append(order, c.EventType)
			}
			acc.Received += c.Received
			acc.Completed += c.Completed
			acc.Failed += c.Failed
			acc.Skipped += c.Skipped
			acc.ProcessingMs += c.ProcessingMs
		}
		return rows.Err()
	}
	if hours {
		var a args
		table, conds := metricsWhere(integrationID, typ, hrs, &a)
		b.Queue(`SELECT event_type, sum(received)::bigint, sum(completed)::bigint, sum(failed)::bigint, sum(skipped)::bigint,
 sum(total_processing_ms)::bigint FROM `+table+joinWhere(conds)+` GROUP BY event_type`, a...).Query(collect)
	}
	for _, p := range partial {
		var a args
		conds := eventConds(projections.EventFilter{IntegrationID: integrationID, EventType: typ, Start: p[0], End: p[1].Add(-time.Microsecond)}, &a)
		b.Queue(`SELECT event_type, count(*), count(*) FILTER (WHERE status = 'COMPLETED'),
 count(*) FILTER (WHERE status = 'FAILED'), count(*) FILTER (WHERE status = 'SKIPPED'),
 coalesce(sum(processing_time_ms) FILTER (WHERE status = 'COMPLETED'), 0)::bigint
 FROM webhook_events`+joinWhere(conds)+` GROUP BY event_type`, a...).Query(collect)
	}
	if b.Len() > 0 {
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
	}
	out := make([]projections.Counts, 0, len(order))
	for _, t := range order {
		out = append(out, *byType[t])
	}
	return out, nil
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// refConds selects the rows ref may name.
func refConds(ref projections.EventRef, a *args) []string {
	cond := "event_id = " + a.add(ref.ID)
	if uuidPattern.MatchString(ref.ID) {
		cond = "(" + cond + " OR id = " + a.add(ref.ID) + "::uuid)"
	}
	conds := []string{cond}
	if ref.IntegrationID != "" {
		conds = append(conds, "integration_id = "+a.add(ref.IntegrationID))
	}
	return conds
}

// isText reports whether every s can be a text value: Postgres refuses
// NUL and bytes that are not UTF-8, so an id that is not names no row.
func isText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return false
		}
	}
	return true
}

// Event returns one audit row with its payload: ErrNotFound when ref names
// none, ErrAmbiguous when a SoftPro event id names several integrations'
// events (a row id always wins).
func (s *QueryStore) Event(ctx context.Context, ref projections.EventRef) (projections.EventRow, error) {
	if !isText(ref.ID, ref.IntegrationID) {
		return projections.EventRow{}, fmt.Errorf("event %q: %w", ref.ID, projections.ErrNotFound)
	}
	var a args
	q := "SELECT " + eventListColumns + ", payload, headers FROM webhook_events" + joinWhere(refConds(ref, &a)) + " LIMIT 3"
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return projections.EventRow{}, classifyQuery("event "+ref.ID, err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projections.EventRow, error) { return scanEvent(r, true) })
	if err != nil {
		return projections.EventRow{}, classifyQuery("event "+ref.ID, err)
	}
	return pick(found, ref)
}

func pick(found []projections.EventRow, ref projections.EventRef) (projections.EventRow, error) {
	for _, r := range found {
		if strings.EqualFold(r.ID, ref.ID) {
			return r, nil
		}
	}
	switch len(found) {
	case 0:
		return projections.EventRow{}, fmt.Errorf("event %s: %w", ref.ID, projections.ErrNotFound)
	case 1:
		return found[0], nil
	default:
		return projections.EventRow{}, fmt.Errorf("event %s: %w", ref.ID, projections.ErrAmbiguous)
	}
}

// claimSQL moves FAILED events (chosen by the condition spliced in) back
// to RECEIVED, one more retry counted, and takes them out of their hour's
// failed count, in one statement: the WHERE status = 'FAILED' is the
// compare-and-set that lets only one concurrent retry have each event.
const claimSQL = `WITH claimed AS (
  UPDATE webhook_events SET status = 'RECEIVED', retry_count = retry_count + 1, last_retry_at = $1
  WHERE status = 'FAILED' AND %s
  RETURNING id::text, integration_id, event_id, event_type, received_at, topic, "partition", "offset"),
d AS (SELECT integration_id, event_type, date_trunc('hour', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
  count(*) AS n FROM claimed GROUP BY 1, 2, 3),
m AS (UPDATE integration_metrics_hourly m SET failed = m.failed - d.n FROM d
  WHERE m.integration_id = d.integration_id AND m.event_type = d.event_type AND m.hour = d.hour)
SELECT * FROM claimed`

func (s *QueryStore) claim(ctx context.Context, cond string, a args) ([]projections.Claim, error) {
	rows, err := s.pool.Query(ctx, fmt.Sprintf(claimSQL, cond), a...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (projections.Claim, error) {
		var c projections.Claim
		var typ string
		err := r.Scan(&c.RowID, &c.IntegrationID, &c.EventID, &typ, &c.ReceivedAt, &c.At.Topic, &c.At.Partition, &c.At.Offset)
		c.EventType = domain.EventType(typ)
		return c, err
	})
}

// ClaimEvent implements projections.RetryStore.
func (s *QueryStore) ClaimEvent(ctx context.Context, ref projections.EventRef, now time.Time) (projections.Claim, error) {
	ev, err := s.Event(ctx, ref)
	if err != nil {
		return projections.Claim{}, err
	}
	if ev.Status != projections.StatusFailed {
		return projections.Claim{}, fmt.Errorf("retry %s (%s): %w", ev.EventID, ev.Status, projections.ErrNotFailed)
	}
	claims, err := s.claim(ctx, "id = $2::uuid", args{now, ev.ID})
	if err != nil {
		return projections.Claim{}, classifyQuery("claim "+ev.EventID, err)
	}
	if len(claims) == 0 {
		return projections.Claim{}, fmt.Errorf("retry %s: %w", ev.EventID, projections.ErrNotFailed)
	}
	return claims[0], nil
}

// ClaimFailed implements projections.RetryStore.
func (s *QueryStore) ClaimFailed(ctx context.Context, integrationID string, eventIDs []string, now time.Time) ([]projections.Claim, error) {
	if !isText(integrationID) {
		return nil, nil
	}
	if len(eventIDs) > 0 {
		// Ids that are not text name no event; asked for only those, none
		// is claimed.
		named := make([]string, 0, len(eventIDs))
		for _, id := range eventIDs {
			if isText(id) {
				named = append(named, id)
			}
		}
		if len(named) == 0 {
			return nil, nil
		}
		eventIDs = named
	}
	a := args{now, integrationID}
	cond := "integration_id = $2"
	if len(eventIDs) > 0 {
		a = append(a, eventIDs)
		cond += " AND event_id = ANY($3::text[])"
	}
	claims, err := s.claim(ctx, cond, a)
	if err != nil {
		return nil, classifyQuery("claim failed events of "+integrationID, err)
	}
	return claims, nil
}

// Release implements projections.RetryStore.
func (s *QueryStore) Release(ctx context.Context, claims []projections.Claim, reason string, now time.Time) error {
	if len(claims) == 0 {
		return nil
	}
	ids := make([]string, len(claims))
	for i, c := range claims {
		ids[i] = c.RowID
	}
	_, err := s.pool.Exec(ctx, `WITH back AS (
  UPDATE webhook_events SET status = 'FAILED', failed_at = $3, error = $2, retry_count = greatest(retry_count - 1, 0)
  WHERE id = ANY($1::uuid[]) AND status = 'RECEIVED'
  RETURNING integration_id, event_type, received_at),
d AS (SELECT integration_id, event_type, date_trunc('hour', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
  count(*) AS n FROM back GROUP BY 1, 2, 3)
UPDATE integration_metrics_hourly m SET failed = m.failed + d.n FROM d
WHERE m.integration_id = d.integration_id AND m.event_type = d.event_type AND m.hour = d.hour`, ids, reason, now)
	if err != nil {
		return classifyQuery(fmt.Sprintf("release %d claims", len(claims)), err)
	}
	return nil
}

// entityQuery is the SQL shape of one kind's list.
type entityQuery struct {
	table entityTable
	// sorts are the orders the kind's list has.
	sorts map[projections.Sort]sortKey
}

// sortKey is one order of a list and how a cursor holds a row's place in
// it. The key is formatted and parsed here, never rendered or cast by
// Postgres, so a cursor does not depend on the session's DateStyle or
// TimeZone, and a key this store did not format is ErrBadCursor before
// any SQL runs.
type sortKey struct {
	// expr is the SQL key; typ is the type its cursor value is bound as.
	expr, typ string
	// format renders e's key; parse reads back what format rendered (and
	// nothing else) as the value to bind.
	format func(e domain.Entity) string
	parse  func(key string) (any, error)
}

var (
	updatedAtKey = sortKey{"softpro_updated_at", "timestamptz",
		func(e domain.Entity) string { return formatInstantKey(e.UpdatedAt) }, func(k string) (any, error) { return parseInstantKey(k) }}
	closingDateKey = sortKey{"COALESCE(closing_date, 'infinity'::date)", "date", formatClosingKey, parseDateKey}
)

var entityQueries = map[domain.Kind]entityQuery{
	domain.KindTransaction: {entityTables[domain.KindTransaction], map[projections.Sort]sortKey{
		projections.SortUpdatedAt:   updatedAtKey,
		projections.SortClosingDate: closingDateKey,
	}},
	domain.KindContact:  {entityTables[domain.KindContact], map[projections.Sort]sortKey{projections.SortUpdatedAt: updatedAtKey}},
	domain.KindDocument: {entityTables[domain.KindDocument], map[projections.Sort]sortKey{projections.SortUpdatedAt: updatedAtKey}},
	domain.KindTask:     {entityTables[domain.KindTask], map[projections.Sort]sortKey{projections.SortUpdatedAt: updatedAtKey}},
}

// formatInstantKey renders a timestamptz key: RFC 3339 in UTC.
func formatInstantKey(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseInstantKey reads a key of formatInstantKey: only its exact output,
// at Postgres' microsecond resolution.
func parseInstantKey(k string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, k)
	if err != nil || formatInstantKey(t) != k || t.Nanosecond()%1000 != 0 {
		return time.Time{}, projections.ErrBadCursor
	}
	return t, nil
}

// noClosingDate is the closing date key of a transaction without one,
// which sorts after every date.
const noClosingDate = "infinity"

// formatClosingKey renders a closing date key as its day number since
// 1970-01-01, so that every date Postgres holds has one (BC dates and years
// past 9999 included), whatever the session's DateStyle or TimeZone.
func formatClosingKey(e domain.Entity) string {
	if e.Transaction.ClosingDate == nil {
		return noClosingDate
	}
	d := e.Transaction.ClosingDate
	midnight := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	return strconv.FormatInt(midnight.Unix()/secondsPerDay, 10) // exact: a UTC midnight
}

const secondsPerDay = 24 * 60 * 60

// The day numbers of Postgres' first and last dates (4713-11-24 BC and
// 5874897-12-31).
const (
	firstDateDay = -2440588
	lastDateDay  = 2145042906
)

// parseDateKey reads a key of formatClosingKey (and nothing else) as a
// date to bind, or infinity.
func parseDateKey(k string) (any, error) {
	if k == noClosingDate {
		return pgtype.Date{InfinityModifier: pgtype.Infinity, Valid: true}, nil
	}
	day, err := strconv.ParseInt(k, 10, 64)
	if err != nil || strconv.FormatInt(day, 10) != k || day < firstDateDay || day > lastDateDay {
		return nil, projections.ErrBadCursor
	}
	return pgtype.Date{Time: time.Unix(day*secondsPerDay, 0).UTC(), Valid: true}, nil
}

// classifyQuery is classify for the query store, except that a row this
// store cannot decode (a value edited behind its back that no Go type here
// holds, such as an infinite closing date) is its own failure, not the
// database's: trying again cannot help.
func classifyQuery(op string, err error) error {
	var scan pgx.ScanArgError
	if errors.As(err, &scan) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return classify(op, err)
}

// ErrUnsupportedSort is returned for a sort a kind does not have.
var ErrUnsupportedSort = errors.New("unsupported sort")

func (q entityQuery) columns() string {
	return commonColumns + ", " + strings.Join(q.table.columns, ", ")
}

func (q entityQuery) scan(row pgx.Row, kind domain.Kind) (domain.Entity, error) {
	e := domain.Entity{Exists: true}
	e.Key.Kind = kind
	var payload []byte
	dest := append([]any{&e.Key.IntegrationID, &e.Key.ID, &e.CreatedAt, &e.UpdatedAt, &e.LastEventID, &e.Deleted, &e.DeletedAt, &payload},
		q.table.scan(&e)...)
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	e.Data = payload
	return e, nil
}

// entityConds are f's conditions without the cursor.
func entityConds(f projections.EntityFilter, a *args) []string {
	conds := []string{"integration_id = " + a.add(f.IntegrationID)}
	if !f.IncludeDeleted {
		conds = append(conds, "NOT deleted")
	}
	if f.TransactionID != "" && f.Kind != domain.KindTransaction {
		conds = append(conds, "transaction_id = "+a.add(f.TransactionID))
	}
	if f.UpdatedSince != nil {
		conds = append(conds, "softpro_updated_at >= "+a.add(*f.UpdatedSince))
	}
	switch f.Kind {
	case domain.KindTransaction:
		if f.Status != "" {
			conds = append(conds, "status = "+a.add(f.Status))
		}
		if f.FileNumber != "" {
			conds = append(conds, "file_number = "+a.add(f.FileNumber))
		}
		if f.ClosingFrom != nil {
			conds = append(conds, "closing_date >= "+a.add(f.ClosingFrom.Format(time.DateOnly))+"::date")
		}
		if f.ClosingTo != nil {
			conds = append(conds, "closing_date <= "+a.add(f.ClosingTo.Format(time.DateOnly))+"::date")
		}
	case domain.KindContact:
		if f.Email != "" {
			conds = append(conds, "lower(email) = lower("+a.add(f.Email)+")")
		}
		if f.NamePrefix != "" {
			// The database folds the case of both sides, with the one
			// lower() the index holds: folding the text in Go instead
			// missed every name with letters its character type leaves as
			// they are ("C" folds ASCII only).
			p := "lower(" + a.add(likePrefix(f.NamePrefix)) + ")"
			conds = append(conds, "(lower(first_name || ' ' || last_name) LIKE "+p+" OR lower(last_name) LIKE "+p+")")
		}
	case domain.KindTask:
		if f.Status != "" {
			conds = append(conds, "status = "+a.add(f.Status))
		}
		if f.DueBefore != nil {
			conds = append(conds, "due_date < "+a.add(*f.DueBefore))
		}
	}
	return conds
}

// likePrefix escapes LIKE's wildcards in p and appends one.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

// Entities returns one keyset page of entities, ordered by (sort key, id).
func (s *QueryStore) Entities(ctx context.Context, f projections.EntityFilter) (projections.EntityPage, error) {
	eq, ok := entityQueries[f.Kind]
	if !ok {
		return projections.EntityPage{}, fmt.Errorf("list entities: unknown kind %q", f.Kind)
	}
	if f.Sort == "" {
		f.Sort = projections.SortUpdatedAt
	}
	sort, ok := eq.sorts[f.Sort]
	if !ok {
		return projections.EntityPage{}, fmt.Errorf("list %s: %w %q", eq.table.name, ErrUnsupportedSort, f.Sort)
	}
	if !isText(f.IntegrationID, f.TransactionID) {
		return projections.EntityPage{}, nil
	}
	scope := f.Scope()
	var a args
	conds := entityConds(f, &a)
	op, dir := ">", "ASC"
	if f.Desc {
		op, dir = "<", "DESC"
	}
	if f.After != nil {
		key, err := sort.parse(f.After.Key)
		if err != nil || f.After.Scope != scope {
			return projections.EntityPage{}, fmt.Errorf("list %s: %w", eq.table.name, projections.ErrBadCursor)
		}
		conds = append(conds, "("+sort.expr+", id) "+op+" ("+a.add(key)+"::"+sort.typ+", "+a.add(f.After.ID)+")")
	}
	q := "SELECT " + eq.columns() + " FROM " + eq.table.name + joinWhere(conds) +
		" ORDER BY " + sort.expr + " " + dir + ", id " + dir + " LIMIT " + a.add(f.Limit+1)
	var ca args
	countSQL := "SELECT count(*) FROM " + eq.table.name + joinWhere(entityConds(f, &ca))

	b := &pgx.Batch{}
	var page projections.EntityPage
	b.Queue(q, a...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			e, err := eq.scan(rows, f.Kind)
			if err != nil {
				return err
			}
			page.Entities = append(page.Entities, e)
		}
		return rows.Err()
	})
	b.Queue(countSQL, ca...).QueryRow(func(row pgx.Row) error { return row.Scan(&page.Total) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return projections.EntityPage{}, classifyQuery("list "+eq.table.name, err)
	}
	if len(page.Entities) > f.Limit {
		page.Entities = page.Entities[:f.Limit]
		last := page.Entities[f.Limit-1]
		page.Next = &projections.Cursor{Key: sort.format(last), ID: last.Key.ID, Scope: scope}
	}
	return page, nil
}

// Entity returns one entity: ErrNotFound when there is none, or when it is
// deleted and includeDeleted is false.
func (s *QueryStore) Entity(ctx context.Context, kind domain.Kind, integrationID, id string, includeDeleted bool) (domain.Entity, error) {
	eq, ok := entityQueries[kind]
	if !ok {
		return domain.Entity{}, fmt.Errorf("entity: unknown kind %q", kind)
	}
	if !isText(integrationID, id) {
		return domain.Entity{}, fmt.Errorf("%s %q: %w", kind, id, projections.ErrNotFound)
	}
	q := "SELECT " + eq.columns() + " FROM " + eq.table.name + " WHERE integration_id = $1 AND id = $2"
	if !includeDeleted {
		q += " AND NOT deleted"
	}
	e, err := eq.scan(s.pool.QueryRow(ctx, q, integrationID, id), kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Entity{}, fmt.Errorf("%s %s: %w", kind, id, projections.ErrNotFound)
	}
	if err != nil {
		return domain.Entity{}, classifyQuery(fmt.Sprintf("%s %s", kind, id), err)
	}
	return e, nil
}

// StatusHistory returns one keyset page of a transaction's status changes,
// oldest first, ordered by (changed_at, id).
func (s *QueryStore) StatusHistory(ctx context.Context, f projections.HistoryFilter) (projections.HistoryPage, error) {
	if !isText(f.IntegrationID, f.TransactionID) {
		return projections.HistoryPage{}, nil
	}
	a := args{f.IntegrationID, f.TransactionID}
	conds := []string{"integration_id = $1", "transaction_id = $2"}
	countSQL := "SELECT count(*) FROM transaction_status_changes" + joinWhere(conds)
	scope := f.Scope()
	if f.After != nil {
		at, err := parseInstantKey(f.After.Key)
		id, idErr := strconv.ParseInt(f.After.ID, 10, 64)
		if err != nil || idErr != nil || strconv.FormatInt(id, 10) != f.After.ID || f.After.Scope != scope {
			return projections.HistoryPage{}, fmt.Errorf("status history: %w", projections.ErrBadCursor)
		}
		conds = append(conds, "(changed_at, id) > ("+a.add(at)+"::timestamptz, "+a.add(id)+"::bigint)")
	}
	// The id is selected as text: the order names the table's column, a
	// number, as the cursor compares it (ORDER BY id would sort the text).
	q := "SELECT id::text, from_status, to_status, changed_at, event_id FROM transaction_status_changes" + joinWhere(conds) +
		" ORDER BY changed_at, transaction_status_changes.id LIMIT " + a.add(f.Limit+1)
	b := &pgx.Batch{}
	var page projections.HistoryPage
	var ids []string
	b.Queue(q, a...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			c := domain.StatusChange{Key: domain.EntityKey{IntegrationID: f.IntegrationID, Kind: domain.KindTransaction, ID: f.TransactionID}}
			var id string
			if err := rows.Scan(&id, &c.From, &c.To, &c.At, &c.EventID); err != nil {
				return err
			}
			page.Changes = append(page.Changes, c)
			ids = append(ids, id)
		}
		return rows.Err()
	})
	b.Queue(countSQL, f.IntegrationID, f.TransactionID).QueryRow(func(row pgx.Row) error { return row.Scan(&page.Total) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return projections.HistoryPage{}, classifyQuery("status history", err)
	}
	if len(page.Changes) > f.Limit {
		page.Changes = page.Changes[:f.Limit]
		last := page.Changes[f.Limit-1]
		page.Next = &projections.Cursor{Key: formatInstantKey(last.At), ID: ids[f.Limit-1], Scope: scope}
	}
	return page, nil
}

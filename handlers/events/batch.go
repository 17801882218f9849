package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/projections"
)

// committer applies the records that a topic's partitions hand over
// concurrently in shared transactions (group commit). Each partition has
// one message in flight; while one transaction runs, the next partitions'
// messages queue up and are applied together by the next one. A message is
// acknowledged only after the transaction that applied it committed, so
// the retry and poison middleware see each message's own outcome.
type committer struct {
	p        *projections.Projector
	queue    chan *pending
	maxBatch int
	timeout  time.Duration
	// linger bounds the wait for expected messages (lingerFor).
	linger time.Duration
	// slots bounds transactions in flight across every topic of the
	// process (QUEUE_CONCURRENCY).
	slots   chan struct{}
	stopped chan struct{}
	// sizes observes each transaction's batch size, durations its time.
	sizes, durations prometheus.Observer
	// fill applies a gap's records from the log (see commit); nil leaves
	// the gap error to the handlers.
	fill func(context.Context, *projections.GapError) error
	// applied holds, per partition, the offset after the last record a
	// transaction of this committer committed; checkEvery is how often
	// the checkpoints are compared with it (see check). Both are used by
	// run's goroutine only.
	applied    map[projections.Partition]int64
	checkEvery time.Duration
	// log receives the stack of a panic while applying (default
	// slog.Default()).
	log *slog.Logger
}

type pending struct {
	ctx  context.Context
	rec  projections.Record
	done chan result
}

type result struct {
	outcome projections.Outcome
	err     error
}

// loopsPerTopic is how many transactions one topic may have in flight. One
// lets every partition's next message join the next batch; two halve the
// batches (measured: 3.6 instead of 6.2 events per transaction, and 60 %
// more database time per event).
const loopsPerTopic = 1

// lingerFor bounds how long a transaction waits for the messages it
// expects (see run): a bound on the latency group commit adds.
const lingerFor = 2 * time.Millisecond

func newCommitter(p *projections.Projector, slots chan struct{}, maxBatch int, timeout time.Duration, sizes, durations prometheus.Observer) *committer {
	return &committer{p: p, queue: make(chan *pending, maxBatch), maxBatch: maxBatch, timeout: timeout, linger: lingerFor, slots: slots,
		stopped: make(chan struct{}), sizes: sizes, durations: durations, applied: map[projections.Partition]int64{}, log: slog.Default()}
}

// apply hands rec to the committer and waits for its outcome. If ctx ends
// first it returns ctx's error; the record may still have been applied, in
// which case its redelivery is a no-op (checkpoints).
func (c *committer) apply(ctx context.Context, rec projections.Record) (projections.Outcome, error) {
	pd := &pending{ctx: ctx, rec: rec, done: make(chan result, 1)}
	select {
	case c.queue <- pd:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-c.stopped:
		return "", errStopped
	}
	select {
	case r := <-pd.done:
		return r.outcome, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	case <-c.stopped:
		return "", errStopped
	}
}

// start runs the committer's loops until ctx ends.
func (c *committer) start(ctx context.Context) (wait func()) {
	done := make(chan struct{})
	for range loopsPerTopic {
		go func() {
			c.run(ctx)
			done <- struct{}{}
		}()
	}
	return func() {
		for range loopsPerTopic {
			<-done
		}
		close(c.stopped)
	}
}

// run gathers and applies batches until ctx ends. A batch takes every
// message already queued; it also waits, up to lingerFor, for the next
// message of each partition the previous batch applied: those partitions
// were acknowledged at its commit and, while they have a backlog, hand over
// their next message within moments. Partitions that have none cost one
// wait, after which nothing is expected of them; an idle topic's first
// message is applied at once.
func (c *committer) run(ctx context.Context) {
	batch := make([]*pending, 0, c.maxBatch)
	expect := map[projections.Partition]bool{}
	linger := time.NewTimer(c.linger)
	linger.Stop()
	var checks <-chan time.Time
	if c.checkEvery > 0 && c.fill != nil {
		t := time.NewTicker(c.checkEvery)
		defer t.Stop()
		checks = t.C
	}
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case <-checks:
			c.check(ctx)
			continue
		case pd := <-c.queue:
			batch = append(batch, pd)
		}
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			c.finish(batch, nil, ctx.Err())
			return
		}
		got := 0
		if expect[batch[0].rec.Partition] {
			got++
		}
		linger.Reset(c.linger)
	gather:
		for len(batch) < c.maxBatch {
			if got >= len(expect) {
				select {
				case pd := <-c.queue:
					batch = append(batch, pd)
					continue
				default:
					break gather
				}
			}
			select {
			case pd := <-c.queue:
				batch = append(batch, pd)
				if expect[pd.rec.Partition] {
					got++
				}
			case <-linger.C:
				expect = map[projections.Partition]bool{}
				got = 0
			}
		}
		linger.Stop()
		clear(expect)
		for _, pd := range batch {
			expect[pd.rec.Partition] = true
		}
		c.commit(batch)
		<-c.slots
	}
}

// commit applies batch in one transaction. An error that is neither
// transient nor a cancellation may belong to any one record (a payload that
// can never project, a value the database refuses), so the batch is then
// applied record by record to give each its own outcome: one bad event must
// not take the good events of other partitions, which happened to share
// its transaction, to the poison queue with it. A transient error (the
// database unavailable, a lost checkpoint race, a timeout) is every
// record's. A panic while applying is such an error of its own (see
// applySafely): its record is retried and poisoned, the others applied.
func (c *committer) commit(batch []*pending) {
	live := batch[:0:0]
	for _, pd := range batch {
		if err := pd.ctx.Err(); err != nil {
			pd.done <- result{err: err}
			continue
		}
		live = append(live, pd)
	}
	if len(live) == 0 {
		return
	}
	c.sizes.Observe(float64(len(live)))
	recs := make([]projections.Record, len(live))
	for i, pd := range live {
		recs[i] = pd.rec
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	began := time.Now()
	outcomes, err := c.applySafely(ctx, recs)
	c.durations.Observe(time.Since(began).Seconds())
	if err == nil || len(live) == 1 || !projections.OwnFailure(ctx, err) {
		c.finish(live, outcomes, err)
		return
	}
	for i, pd := range live {
		out, err := c.applySafely(ctx, recs[i:i+1])
		var o projections.Outcome
		if err == nil {
			o = out[0]
		}
		c.done(pd, result{outcome: o, err: err})
	}
}

// applySafely is applyFilling with a panic turned into an error
// (projections.PanicError), its stack logged: the committer's goroutine
// applies for every handler of the topic, and a panic there would end the
// process (and again in every process the record is delivered to). The
// transaction is not committed: the store's connection, still inside it,
// is closed rather than reused.
func (c *committer) applySafely(ctx context.Context, recs []projections.Record) (outcomes []projections.Outcome, err error) {
	defer func() {
		perr := projections.Recovered(recover())
		if perr == nil {
			return
		}
		args := []any{"records", len(recs), "err", perr, "stack", string(perr.Stack)}
		if len(recs) == 1 {
			args = append(args, "partition", recs[0].Partition.Partition, "offset", recs[0].Offset, "event", recs[0].Envelope.EventID)
		}
		c.log.Error("projection panicked", args...)
		outcomes, err = nil, perr
	}()
	return c.applyFilling(ctx, recs)
}

// check fills, from the log, what the database lost of the records this
// committer committed: a crash of Postgres can take asynchronous commits
// whose messages were acknowledged, and on a partition that receives
// nothing more no later record would reveal the gap. It runs between
// transactions, in a slot like them.
func (c *committer) check(ctx context.Context) {
	if len(c.applied) == 0 {
		return
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.slots }()
	defer func() {
		if perr := projections.Recovered(recover()); perr != nil {
			c.log.Error("projection panicked while filling lost commits from the log, will check again",
				"err", perr, "stack", string(perr.Stack))
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	gaps, err := c.p.Behind(cctx, c.applied)
	if err != nil {
		return // the database is out of reach: the next check tries again
	}
	for _, gap := range gaps {
		if c.fill(cctx, gap) != nil {
			return
		}
	}
}

// done answers pd and, when its record was committed, remembers it.
func (c *committer) done(pd *pending, r result) {
	if r.err == nil {
		p := pd.rec.Partition
		c.applied[p] = max(c.applied[p], pd.rec.Offset+1)
	}
	pd.done <- r
}

// applyFilling applies recs in one transaction. A record beyond its partition's
// checkpoint: the records in between were never applied (commits lost,
// offsets moved, a record poisoned), so they are read from the log and
// applied first. Each fill commits its progress; recs can reveal one gap
// per partition.
func (c *committer) applyFilling(ctx context.Context, recs []projections.Record) ([]projections.Outcome, error) {
	outcomes, err := c.p.Apply(ctx, recs...)
	for range len(recs) {
		gap, ok := projections.AsGap(err)
		if !ok || c.fill == nil {
			break
		}
		if err = c.fill(ctx, gap); err != nil {
			break
		}
		outcomes, err = c.p.Apply(ctx, recs...)
	}
	return outcomes, err
}

func (c *committer) finish(batch []*pending, outcomes []projections.Outcome, err error) {
	for i, pd := range batch {
		r := result{err: err}
		if err == nil {
			r.outcome = outcomes[i]
		}
		c.done(pd, r)
	}
}

// errStopped is returned to handlers whose committer stopped at shutdown;
// like a cancellation, it is neither retried nor poisoned.
var errStopped = fmt.Errorf("projection committer stopped: %w", context.Canceled)

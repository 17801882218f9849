package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/projections"
)

// ReplayReader reads partitions of the event log directly (no consumer
// group) for replay, rebuild and consistency checks. It keeps no
// connection between calls, so it is safe for concurrent use.
type ReplayReader struct {
	brokers []string
}

var _ projections.LogScanner = (*ReplayReader)(nil)

// NewReplayReader returns a reader of the log on brokers.
func NewReplayReader(brokers []string) *ReplayReader {
	if len(brokers) == 0 {
		panic("kafka: NewReplayReader needs brokers")
	}
	return &ReplayReader{brokers: brokers}
}

// Bounds implements projections.LogScanner: each partition of the existing
// topics starts at its first record appended at or after from (the log
// start when from is zero) and ends before its first record appended at or
// after to (the end offsets, listed now, when to is zero). Topics that do
// not exist are left out.
func (r *ReplayReader) Bounds(ctx context.Context, topics []string, from, to time.Time) (projections.Bounds, error) {
	adm, err := newAdmin(r.brokers)
	if err != nil {
		return projections.Bounds{}, fmt.Errorf("log bounds: %w", err)
	}
	defer adm.Close()
	listedEnd, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return projections.Bounds{}, fmt.Errorf("log bounds: %w", err)
	}
	end, err := offsetsOf(listedEnd)
	if err != nil && !onlyUnknownTopics(err) {
		return projections.Bounds{}, fmt.Errorf("log bounds: %w", err)
	}
	present := slices.Sorted(maps.Keys(end))
	b := projections.Bounds{Start: map[projections.Partition]int64{}, End: map[projections.Partition]int64{}}
	if len(present) == 0 {
		return b, nil
	}
	var listedStart kadm.ListedOffsets
	if from.IsZero() {
		listedStart, err = adm.ListStartOffsets(ctx, present...)
	} else {
		listedStart, err = listOffsetsFrom(ctx, adm, from, present)
	}
	if err != nil {
		return projections.Bounds{}, fmt.Errorf("log bounds: start: %w", err)
	}
	start, err := offsetsOf(listedStart)
	if err != nil {
		return projections.Bounds{}, fmt.Errorf("log bounds: start: %w", err)
	}
	if !to.IsZero() {
		listedTo, err := listOffsetsFrom(ctx, adm, to, present)
		if err != nil {
			return projections.Bounds{}, fmt.Errorf("log bounds: end: %w", err)
		}
		upto, err := offsetsOf(listedTo)
		if err != nil {
			return projections.Bounds{}, fmt.Errorf("log bounds: end: %w", err)
		}
		for t, ps := range upto {
			for p, o := range ps {
				// A record appended after the end listing can make the
				// time listing later than the end taken first.
				end[t][p] = min(end[t][p], o)
			}
		}
	}
	for t, ps := range end {
		for p, e := range ps {
			part := projections.Partition{Topic: t, Partition: p}
			b.End[part] = e
			b.Start[part] = min(start[t][p], e)
		}
	}
	return b, nil
}

// PartitionOf implements projections.LogScanner: the partition the
// producer's partitioner (murmur2 of the key, as Kafka's Java client)
// gives an integration's records among n.
func (r *ReplayReader) PartitionOf(integrationID string, n int) int32 {
	return int32(keyPartitioner.Partition(&kgo.Record{Key: []byte(integrationID)}, n))
}

// keyPartitioner is the producer's partitioner, made once: making one
// seeds a random source (for records without a key), 8 % of the CPU of
// the query API benchmark when made for every call. A record with a key
// only hashes it, so it is safe for concurrent use.
var keyPartitioner = kgo.StickyKeyPartitioner(nil).ForTopic("")

// Scan implements projections.LogScanner. It reads every partition of req
// from req.Start to req.End (exclusive), keeps the records that pass the
// filters, and calls fn with batches of at most req.BatchSize records.
// An integration's records come in append order: each partition's in
// offset order, merged across topics by the time they were appended (then
// by topic name), so every reader of the log folds them alike. When every
// topic has as many partitions, an integration's records share a partition
// number across topics, so only the partitions that share a number are
// merged, and a batch holds records of one partition number. Otherwise,
// and for one integration's scan, all the partitions are merged together.
// Records that are not envelopes are passed with their Err set. fn is
// called from one goroutine; the batch's slice is fn's to keep.
func (r *ReplayReader) Scan(ctx context.Context, req projections.ScanRequest, fn func([]projections.ScannedRecord) error) error {
	batch := max(req.BatchSize, 1)
	consume := make(map[string]map[int32]kgo.Offset)
	streams := make(map[projections.Partition]*scanStream)
	groups := make(map[int32][]*scanStream)
	byNumber := req.IntegrationID == "" && samePartitionCounts(req.End)
	groupOf := func(partition int32) int32 {
		if byNumber {
			return partition
		}
		return 0
	}
	for part, e := range req.End {
		s, ok := req.Start[part]
		if !ok || s >= e {
			continue
		}
		if consume[part.Topic] == nil {
			consume[part.Topic] = make(map[int32]kgo.Offset)
		}
		consume[part.Topic][part.Partition] = kgo.NewOffset().At(s)
		st := &scanStream{part: part, end: e}
		streams[part] = st
		g := groupOf(part.Partition)
		groups[g] = append(groups[g], st)
	}
	if len(streams) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(r.brokers...),
		kgo.ConsumePartitions(consume),
		// Every partition's share in each response, so the partitions
		// that share a number advance together and the merge waits
		// little; the buffered fetches stay a few tens of MiB whatever
		// the log's size.
		kgo.FetchMaxPartitionBytes(scanPartitionBytes),
		kgo.FetchMaxBytes(int32(min(len(streams)*scanPartitionBytes, 64<<20))),
		// The records asked for exist already: a fetch that finds none
		// (its partitions paused or done) should not wait long for more.
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("scan log: %w", err)
	}
	defer cl.Close()
	m := scanMerge{batch: batch, fn: fn}
	f := tailFilter{integration: req.IntegrationID, types: req.Types}
	open := len(streams)
	for open > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan log: %w", err)
		}
		for _, fe := range fetches.Errors() {
			if !kerr.IsRetriable(fe.Err) && !errors.Is(fe.Err, context.Canceled) {
				return fmt.Errorf("scan log: fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		touched := map[int32]bool{}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			st := streams[projections.Partition{Topic: fp.Topic, Partition: fp.Partition}]
			if st == nil || st.done {
				return
			}
			for _, rec := range fp.Records {
				if rec.Offset >= st.end {
					break
				}
				if kr, ok := f.record(rec); ok {
					st.buf = append(st.buf, projections.ScannedRecord{
						Record: projections.Record{Partition: st.part, Offset: kr.Offset, Envelope: kr.Envelope, Timestamp: kr.Timestamp},
						Err:    kr.Err,
					})
				}
			}
			if len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset >= st.end-1 {
				st.done = true
				open--
			}
			touched[groupOf(fp.Partition)] = true
		})
		for n := range touched {
			if err := m.emit(groups[n]); err != nil {
				return fmt.Errorf("scan log: %w", err)
			}
		}
		// A partition whose records wait for another topic's is not
		// fetched further until they are passed on, so memory stays
		// bounded however far apart the topics are.
		pause, resume := map[string][]int32{}, map[string][]int32{}
		for _, st := range streams {
			hold := st.done || len(st.buf) >= scanHeld
			switch {
			case hold && !st.paused:
				pause[st.part.Topic] = append(pause[st.part.Topic], st.part.Partition)
			case !hold && st.paused:
				resume[st.part.Topic] = append(resume[st.part.Topic], st.part.Partition)
			}
			st.paused = hold
		}
		if len(pause) > 0 {
			cl.PauseFetchPartitions(pause)
		}
		if len(resume) > 0 {
			cl.ResumeFetchPartitions(resume)
		}
	}
	return nil
}

// samePartitionCounts reports whether every topic among parts has as many
// partitions.
func samePartitionCounts(parts map[projections.Partition]int64) bool {
	counts := map[string]int{}
	for p := range parts {
		counts[p.Topic]++
	}
	n := -1
	for _, c := range counts {
		if n >= 0 && c != n {
			return false
		}
		n = c
	}
	return true
}

// scanPartitionBytes is what one fetch response holds of a partition at
// most; scanHeld is how many records a partition may have waiting for
// another topic's before its fetching pauses (about a response's worth).
const (
	scanPartitionBytes = 256 << 10
	scanHeld           = 256
)

// scanStream is one partition of a scan: its records read but not yet
// passed on, in offset order.
type scanStream struct {
	part   projections.Partition
	end    int64
	buf    []projections.ScannedRecord
	done   bool // every record before end has been read
	paused bool
}

// scanMerge passes on the records of a group of partitions in append
// order.
type scanMerge struct {
	batch int
	fn    func([]projections.ScannedRecord) error
}

// emit passes on group's records for as long as the next one is known.
func (m scanMerge) emit(group []*scanStream) error {
	var out []projections.ScannedRecord
	for {
		next := nextOf(group)
		if next == nil {
			break
		}
		out = append(out, next.buf[0])
		next.buf[0] = projections.ScannedRecord{}
		if next.buf = next.buf[1:]; len(next.buf) == 0 {
			next.buf = nil
		}
		if len(out) == m.batch {
			if err := m.fn(out); err != nil {
				return err
			}
			out = nil
		}
	}
	if len(out) > 0 {
		return m.fn(out)
	}
	return nil
}

// nextOf returns the stream of group whose first record comes next, or nil
// when none has one or that is not known yet: a stream with nothing
// buffered that is not done may still hold an earlier record.
func nextOf(group []*scanStream) *scanStream {
	var next *scanStream
	for _, st := range group {
		if len(st.buf) == 0 {
			if !st.done {
				return nil
			}
			continue
		}
		if next == nil || appendedBefore(st.buf[0], next.buf[0]) {
			next = st
		}
	}
	return next
}

// appendedBefore orders two records of different topics: by append time,
// then by topic name.
func appendedBefore(a, b projections.ScannedRecord) bool {
	if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
		return c < 0
	}
	return a.Partition.Topic < b.Partition.Topic
}

// Partitions implements projections.LogScanner: how many partitions each
// existing topic has.
func (r *ReplayReader) Partitions(ctx context.Context, topics []string) (map[string]int, error) {
	end, err := EndOffsets(ctx, r.brokers, topics...)
	if err != nil && !onlyUnknownTopics(err) {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	out := make(map[string]int, len(end))
	for t, ps := range end {
		out[t] = len(ps)
	}
	return out, nil
}

// listOffsetsFrom lists, per partition, the offset of the first record
// stamped at or after t. Before 1970 that is the log's start: Kafka reads
// a negative time as a special offset (-1 the end, -2 the start, other
// values an error), not as a time.
func listOffsetsFrom(ctx context.Context, adm *kadm.Client, t time.Time, topics []string) (kadm.ListedOffsets, error) {
	if ms := ceilMilli(t); ms >= 0 {
		return adm.ListOffsetsAfterMilli(ctx, ms, topics...)
	}
	return adm.ListStartOffsets(ctx, topics...)
}

// ceilMilli is t in Unix milliseconds, rounded up: record timestamps are
// whole milliseconds, so a record is at or after t exactly when its
// timestamp is at or after ceilMilli(t).
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

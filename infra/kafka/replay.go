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
		listedStart, err = adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), present...)
	}
	if err != nil {
		return projections.Bounds{}, fmt.Errorf("log bounds: start: %w", err)
	}
	start, err := offsetsOf(listedStart)
	if err != nil {
		return projections.Bounds{}, fmt.Errorf("log bounds: start: %w", err)
	}
	if !to.IsZero() {
		listedTo, err := adm.ListOffsetsAfterMilli(ctx, to.UnixMilli(), present...)
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
	return int32(keyPartitioner.ForTopic("").Partition(&kgo.Record{Key: []byte(integrationID)}, n))
}

var keyPartitioner = kgo.StickyKeyPartitioner(nil)

// Scan implements projections.LogScanner. It reads every partition of req
// from req.Start to req.End (exclusive), keeps the records that pass the
// filters, and calls fn with batches of at most req.BatchSize records, each
// batch from one partition in offset order. Records that are not envelopes
// are passed with their Err set. fn is called from one goroutine; the
// batch's slice is fn's to keep.
func (r *ReplayReader) Scan(ctx context.Context, req projections.ScanRequest, fn func([]projections.ScannedRecord) error) error {
	batch := max(req.BatchSize, 1)
	consume := make(map[string]map[int32]kgo.Offset)
	remaining := make(map[projections.Partition]int64)
	for part, e := range req.End {
		s, ok := req.Start[part]
		if !ok || s >= e {
			continue
		}
		if consume[part.Topic] == nil {
			consume[part.Topic] = make(map[int32]kgo.Offset)
		}
		consume[part.Topic][part.Partition] = kgo.NewOffset().At(s)
		remaining[part] = e
	}
	if len(remaining) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(r.brokers...),
		kgo.ConsumePartitions(consume),
		// Large enough responses for few round trips, small enough that
		// the buffered fetches stay a few MiB whatever the log's size.
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.FetchMaxBytes(8<<20),
	)
	if err != nil {
		return fmt.Errorf("scan log: %w", err)
	}
	defer cl.Close()
	f := tailFilter{integration: req.IntegrationID, types: req.Types}
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan log: %w", err)
		}
		for _, fe := range fetches.Errors() {
			if !kerr.IsRetriable(fe.Err) && !errors.Is(fe.Err, context.Canceled) {
				return fmt.Errorf("scan log: fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		done := make(map[string][]int32)
		var ferr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if ferr != nil {
				return
			}
			part := projections.Partition{Topic: fp.Topic, Partition: fp.Partition}
			e, open := remaining[part]
			if !open {
				return
			}
			out := make([]projections.ScannedRecord, 0, min(len(fp.Records), batch))
			for _, rec := range fp.Records {
				if rec.Offset >= e {
					break
				}
				if kr, ok := f.record(rec); ok {
					out = append(out, projections.ScannedRecord{
						Record:    projections.Record{Partition: part, Offset: kr.Offset, Envelope: kr.Envelope},
						Timestamp: kr.Timestamp,
						Err:       kr.Err,
					})
				}
				if len(out) == batch {
					if ferr = fn(out); ferr != nil {
						return
					}
					out = make([]projections.ScannedRecord, 0, batch)
				}
			}
			if len(out) > 0 {
				if ferr = fn(out); ferr != nil {
					return
				}
			}
			if len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset >= e-1 {
				delete(remaining, part)
				done[part.Topic] = append(done[part.Topic], part.Partition)
			}
		})
		if ferr != nil {
			return fmt.Errorf("scan log: %w", ferr)
		}
		if len(done) > 0 {
			cl.PauseFetchPartitions(done)
		}
	}
	return nil
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

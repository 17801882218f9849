package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// LogReader reads single records back from the log by position, for manual
// retries. It keeps no connection between calls, so it is safe for
// concurrent use.
type LogReader struct {
	brokers []string
}

var _ projections.LogReader = (*LogReader)(nil)

// NewLogReader returns a reader of the log on brokers.
func NewLogReader(brokers []string) *LogReader {
	if len(brokers) == 0 {
		panic("kafka: NewLogReader needs brokers")
	}
	return &LogReader{brokers: brokers}
}

type partKey struct {
	topic     string
	partition int32
}

// ReadEnvelopes implements projections.LogReader. It reads each partition
// once, from the lowest position asked for to the highest. Positions at or
// past a partition's end, and records that are not envelopes, are absent
// from the result. An error of the brokers (unreachable, or failing the
// listing or a fetch) wraps projections.ErrUnavailable.
func (r *LogReader) ReadEnvelopes(ctx context.Context, at []projections.LogPosition) (map[projections.LogPosition]domain.Envelope, error) {
	out := make(map[projections.LogPosition]domain.Envelope, len(at))
	if len(at) == 0 {
		return out, nil
	}
	want := make(map[partKey]map[int64]bool)
	var topics []string
	for _, p := range at {
		k := partKey{p.Topic, p.Partition}
		if want[k] == nil {
			want[k] = make(map[int64]bool)
			topics = append(topics, p.Topic)
		}
		want[k][p.Offset] = true
	}
	end, err := EndOffsets(ctx, r.brokers, uniqStrings(topics)...)
	if err != nil && !errors.Is(err, ErrUnknownTopic) {
		return nil, projections.Unavailable("read records", err)
	}
	consume := make(map[string]map[int32]kgo.Offset)
	last := make(map[partKey]int64) // the highest offset still wanted
	for k, offs := range want {
		e, ok := end[k.topic][k.partition]
		if !ok {
			continue
		}
		lo, hi := int64(-1), int64(-1)
		for o := range offs {
			if o < 0 || o >= e {
				continue
			}
			if lo < 0 || o < lo {
				lo = o
			}
			hi = max(hi, o)
		}
		if lo < 0 {
			continue
		}
		if consume[k.topic] == nil {
			consume[k.topic] = make(map[int32]kgo.Offset)
		}
		consume[k.topic][k.partition] = kgo.NewOffset().At(lo)
		last[k] = hi
	}
	if len(consume) == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ConsumePartitions(consume))
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	defer cl.Close()
	for len(last) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		for _, fe := range fetches.Errors() {
			if !kerr.IsRetriable(fe.Err) {
				return nil, projections.Unavailable(fmt.Sprintf("read records: fetch %s[%d]", fe.Topic, fe.Partition), fe.Err)
			}
		}
		done := make(map[string][]int32)
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			k := partKey{fp.Topic, fp.Partition}
			hi, open := last[k]
			if !open {
				return
			}
			for _, rec := range fp.Records {
				if want[k][rec.Offset] {
					if env, err := domain.DecodeEnvelope(rec.Value); err == nil {
						out[projections.LogPosition{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}] = env
					}
				}
				if rec.Offset >= hi {
					delete(last, k)
					done[k.topic] = append(done[k.topic], k.partition)
					break
				}
			}
		})
		if len(done) > 0 {
			cl.PauseFetchPartitions(done)
		}
	}
	return out, nil
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
)

// TailConfig says which part of the log Tail reads.
type TailConfig struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// Topics to read; default domain.EventTopics. A topic of the service
	// (domain.AllTopics) that the broker does not have yet is skipped, as
	// it holds no records; any other name the broker does not have is an
	// error wrapping ErrUnknownTopic that names it, as is a list of which
	// the broker has none.
	Topics []string
	// IntegrationID keeps only that integration's records (the record
	// key); empty keeps all.
	IntegrationID string
	// Types keeps only records of these event types (the type header, or
	// the envelope's type when the header is missing); empty keeps all.
	Types []domain.EventType
	// From starts each partition at its first record with a timestamp at
	// or after From (the time the record was appended); zero starts at the
	// beginning of the log.
	From time.Time
	// Follow keeps reading new records until ctx ends. Without it, Tail
	// stops at the end offsets listed when it started.
	Follow bool
}

// Record is one record of the event log.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	// Timestamp is when the record was appended.
	Timestamp time.Time
	// Envelope is the decoded value; the zero Envelope when Err is set.
	Envelope domain.Envelope
	// Err is set when the value is not a valid envelope (it wraps
	// domain.ErrInvalidEnvelope); such records are passed on, not
	// dropped, so that a reader sees every record it asked for.
	Err error
}

// Tail reads the log partition by partition, without a consumer group, and
// calls fn with every record that passes the filters. Records of one
// partition arrive in offset order; partitions interleave. fn is called from
// one goroutine at a time, and each batch the broker returns is passed to fn
// before the next is used.
//
// Topics are checked first, in either mode, before fn is called: see
// TailConfig.Topics. Without Follow, Tail lists the end offsets first and
// returns nil once every partition has been read up to them: records
// appended later are not read; when ctx ends first, it returns an error
// wrapping ctx.Err(). With Follow it reads until ctx ends, and then
// returns nil: ending ctx is how a follow ends (new partitions of a topic
// are not picked up). When fn returns an error Tail stops and returns it
// wrapped. Retriable broker errors (a broker restarting) are retried
// until ctx ends; others end Tail. Each call uses its own clients, so
// any number of Tails may run at once.
func Tail(ctx context.Context, cfg TailConfig, fn func(Record) error) error {
	err := tail(ctx, cfg, fn)
	if cfg.Follow && err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

func tail(ctx context.Context, cfg TailConfig, fn func(Record) error) error {
	topics := cfg.Topics
	if len(topics) == 0 {
		topics = domain.EventTopics
	}
	if len(cfg.Brokers) == 0 {
		return errors.New("tail: brokers are required")
	}

	start, end, err := tailBounds(ctx, cfg.Brokers, topics, cfg.From)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	if err := checkTailTopics(topics, end); err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	consume := make(map[string]map[int32]kgo.Offset)
	remaining := make(map[string]map[int32]int64) // partition -> end offset, !Follow only
	for t, ps := range end {
		for p, e := range ps {
			s := start[t][p]
			if !cfg.Follow {
				if s >= e {
					continue
				}
				if remaining[t] == nil {
					remaining[t] = make(map[int32]int64)
				}
				remaining[t][p] = e
			}
			if consume[t] == nil {
				consume[t] = make(map[int32]kgo.Offset)
			}
			consume[t][p] = kgo.NewOffset().At(s)
		}
	}
	if len(consume) == 0 {
		return nil // without Follow: nothing to read up to the end
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumePartitions(consume),
		// Replay reads far more than live consumers: larger responses
		// mean fewer round trips.
		kgo.FetchMaxPartitionBytes(8<<20),
	)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	defer cl.Close()

	f := tailFilter{integration: cfg.IntegrationID, types: cfg.Types}
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		for _, fe := range fetches.Errors() {
			// Retriable errors are retried inside the client.
			if !kerr.IsRetriable(fe.Err) {
				return fmt.Errorf("tail: fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		done := make(map[string][]int32)
		for _, ft := range fetches {
			for _, tp := range ft.Topics {
				for _, fp := range tp.Partitions {
					e, bounded := remaining[tp.Topic][fp.Partition]
					for _, r := range fp.Records {
						if bounded && r.Offset >= e {
							break
						}
						if rec, ok := f.record(r); ok {
							if err := fn(rec); err != nil {
								return fmt.Errorf("tail: %w", err)
							}
						}
					}
					// The event topics have dense offsets (no
					// transactions, no compaction), so the record
					// at e-1 always arrives.
					if bounded && len(fp.Records) > 0 && fp.Records[len(fp.Records)-1].Offset >= e-1 {
						delete(remaining[tp.Topic], fp.Partition)
						done[tp.Topic] = append(done[tp.Topic], fp.Partition)
					}
				}
			}
		}
		if cfg.Follow {
			continue
		}
		for t, ps := range remaining {
			if len(ps) == 0 {
				delete(remaining, t)
			}
		}
		if len(remaining) == 0 {
			return nil
		}
		if len(done) > 0 {
			cl.PauseFetchPartitions(done)
		}
	}
}

// tailBounds lists where each partition of the existing topics starts (at
// from, or the log start) and ends (its high watermark). The end is listed
// first, so a start listed later can only be later.
func tailBounds(ctx context.Context, brokers, topics []string, from time.Time) (start, end Offsets, err error) {
	adm, err := newAdmin(brokers)
	if err != nil {
		return nil, nil, err
	}
	defer adm.Close()

	listedEnd, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	if end, err = offsetsOf(listedEnd); err != nil && !onlyUnknownTopics(err) {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	present := slices.Collect(maps.Keys(end))
	if len(present) == 0 {
		return Offsets{}, Offsets{}, nil
	}

	var listedStart kadm.ListedOffsets
	if from.IsZero() {
		listedStart, err = adm.ListStartOffsets(ctx, present...)
	} else {
		listedStart, err = listOffsetsFrom(ctx, adm, from, present)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	if start, err = offsetsOf(listedStart); err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	return start, end, nil
}

// checkTailTopics refuses topics the broker does not have (they are not
// in end) unless they are the service's own, not created yet, and refuses
// a list of which the broker has none, as there is nothing to read or
// follow. The names are quoted, as they come from the command line.
func checkTailTopics(topics []string, end Offsets) error {
	var unknown, missing []string
	for _, t := range topics {
		if _, ok := end[t]; ok {
			continue
		}
		q := strconv.Quote(t)
		if slices.Contains(missing, q) || slices.Contains(unknown, q) {
			continue
		}
		if slices.Contains(domain.AllTopics, t) {
			missing = append(missing, q)
		} else {
			unknown = append(unknown, q)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w %s: the broker has no such topic and it is not one of the service's (%s)",
			ErrUnknownTopic, strings.Join(unknown, ", "), strings.Join(domain.AllTopics, ", "))
	}
	if len(end) == 0 {
		return fmt.Errorf("none of %s is on the broker yet (the service creates its topics when it starts): %w",
			strings.Join(missing, ", "), ErrUnknownTopic)
	}
	return nil
}

// onlyUnknownTopics reports whether err is made only of ErrUnknownTopic.
func onlyUnknownTopics(err error) bool {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return errors.Is(err, ErrUnknownTopic)
	}
	for _, e := range j.Unwrap() {
		if !errors.Is(e, ErrUnknownTopic) {
			return false
		}
	}
	return true
}

// tailFilter keeps the records Tail was asked for, deciding on the key and
// headers before paying for a decode.
type tailFilter struct {
	integration string
	types       []domain.EventType
}

func (f tailFilter) record(r *kgo.Record) (Record, bool) {
	if f.integration != "" && string(r.Key) != f.integration {
		return Record{}, false
	}
	typeKnown := false
	if len(f.types) > 0 {
		for _, h := range r.Headers {
			if h.Key == domain.HeaderType {
				if !slices.Contains(f.types, domain.EventType(h.Value)) {
					return Record{}, false
				}
				typeKnown = true
				break
			}
		}
	}
	rec := Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       string(r.Key),
		Timestamp: r.Timestamp,
	}
	env, err := domain.DecodeEnvelope(r.Value)
	if err != nil {
		// Without a type header there is no telling what this record
		// was: keep it, so that a broken record is seen, not hidden.
		rec.Err = fmt.Errorf("%s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
		return rec, true
	}
	if len(f.types) > 0 && !typeKnown && !slices.Contains(f.types, env.Type) {
		return Record{}, false
	}
	rec.Envelope = env
	return rec, true
}

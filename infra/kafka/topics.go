package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnknownTopic is returned for a topic that does not exist.
var ErrUnknownTopic = errors.New("unknown topic")

// TopicSpec is how EnsureTopics creates a missing topic.
type TopicSpec struct {
	// Partitions is the partition count; 0 or -1 takes the broker's
	// default. It decides where keys live and cannot shrink later.
	Partitions int32
	// Replication is the replication factor; 0 or -1 takes the broker's
	// default.
	Replication int16
}

// EnsureTopics creates the topics that do not exist yet with spec and
// infinite retention (retention.ms=-1, retention.bytes=-1: the log is the
// source of truth), and returns the ones it created, in the order given.
// Existing topics are left as they are, whatever their settings. It is safe
// to call from several processes at once.
func EnsureTopics(ctx context.Context, brokers []string, topics []string, spec TopicSpec) (created []string, err error) {
	if len(topics) == 0 {
		return nil, nil
	}
	adm, err := newAdmin(brokers)
	if err != nil {
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	defer adm.Close()

	partitions, replication := spec.Partitions, spec.Replication
	if partitions == 0 {
		partitions = -1
	}
	if replication == 0 {
		replication = -1
	}
	configs := map[string]*string{
		"retention.ms":    kadm.StringPtr("-1"),
		"retention.bytes": kadm.StringPtr("-1"),
	}
	resps, err := adm.CreateTopics(ctx, partitions, replication, configs, topics...)
	if err != nil {
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	var errs []error
	for _, t := range topics {
		r, ok := resps[t]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("create %s: missing from response", t))
		case r.Err == nil:
			created = append(created, t)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			errs = append(errs, fmt.Errorf("create %s: %w", t, r.Err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return created, fmt.Errorf("ensure topics: %w", err)
	}
	return created, nil
}

// Offsets are end offsets (high watermarks) by topic and partition: the
// offset the next record of each partition will get.
type Offsets map[string]map[int32]int64

// Total is the number of records ever appended to topic (its end offsets
// summed over partitions); 0 for a topic not in o.
func (o Offsets) Total(topic string) int64 {
	var n int64
	for _, off := range o[topic] {
		n += off
	}
	return n
}

// EndOffsets lists the end offsets of every partition of topics (all topics
// if none are given). A topic that does not exist is an error wrapping
// ErrUnknownTopic.
func EndOffsets(ctx context.Context, brokers []string, topics ...string) (Offsets, error) {
	adm, err := newAdmin(brokers)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	defer adm.Close()
	return endOffsets(ctx, adm, topics)
}

func endOffsets(ctx context.Context, adm *kadm.Client, topics []string) (Offsets, error) {
	listed, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	out, err := offsetsOf(listed)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	return out, nil
}

// offsetsOf converts a kadm listing, turning per-partition errors into one.
func offsetsOf(listed kadm.ListedOffsets) (Offsets, error) {
	out := make(Offsets, len(listed))
	var errs []error
	for _, t := range slices.Sorted(maps.Keys(listed)) {
		for p, o := range listed[t] {
			switch {
			case errors.Is(o.Err, kerr.UnknownTopicOrPartition) && p < 0:
				errs = append(errs, fmt.Errorf("%s: %w", t, ErrUnknownTopic))
			case o.Err != nil:
				errs = append(errs, fmt.Errorf("%s[%d]: %w", t, p, o.Err))
			default:
				if out[t] == nil {
					out[t] = make(map[int32]int64)
				}
				out[t][p] = o.Offset
			}
		}
	}
	return out, errors.Join(errs...)
}

// newAdmin returns an admin client for a one-off request; close it after.
func newAdmin(brokers []string) (*kadm.Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("brokers are required")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

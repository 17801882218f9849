package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Admin reports end offsets and consumer-group lag over one client kept for
// the life of the process. The health and stats routes ask on every
// request; a client per request (a connection and a metadata request each)
// cost about four times the requests themselves. Safe for concurrent use.
type Admin struct {
	adm *kadm.Client
}

// NewAdmin returns an Admin of the brokers; it connects on first use.
func NewAdmin(brokers []string) (*Admin, error) {
	adm, err := newAdmin(brokers)
	if err != nil {
		return nil, fmt.Errorf("kafka admin: %w", err)
	}
	return &Admin{adm: adm}, nil
}

// Close releases the client's connections.
func (a *Admin) Close() { a.adm.Close() }

// EndOffsets is the package's EndOffsets over a's client.
func (a *Admin) EndOffsets(ctx context.Context, topics ...string) (Offsets, error) {
	return endOffsets(ctx, a.adm, topics)
}

// Lag returns, per topic, the records its consumer group has not yet
// committed (groups maps each topic to its group). A topic the group has
// never committed on counts every record on it.
func (a *Admin) Lag(ctx context.Context, groups map[string]string) (map[string]int64, error) {
	names := make([]string, 0, len(groups))
	topics := make([]string, 0, len(groups))
	for t, g := range groups {
		names = append(names, g)
		topics = append(topics, t)
	}
	lags, err := a.adm.Lag(ctx, uniqStrings(names)...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	starts, err := a.adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	ends, err := a.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	out := make(map[string]int64, len(groups))
	for t, g := range groups {
		gl, ok := lags[g]
		if ok && gl.Error() == nil {
			if tl, has := gl.Lag.TotalByTopic()[t]; has {
				out[t] = tl.Lag
				continue
			}
		}
		var n int64
		for p, e := range ends[t] {
			if e.Err != nil {
				continue
			}
			s := starts[t][p]
			n += e.Offset - max(s.Offset, 0)
		}
		out[t] = n
	}
	return out, nil
}

func uniqStrings(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

package projections

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// brokenLog is a fakeLog whose reads fail, as a broker that does not answer.
type brokenLog struct {
	fakeLog
	boundsErr, scanErr error
}

func (b *brokenLog) Bounds(ctx context.Context, topics []string, from, to time.Time) (Bounds, error) {
	if b.boundsErr != nil {
		return Bounds{}, b.boundsErr
	}
	return b.fakeLog.Bounds(ctx, topics, from, to)
}

func (b *brokenLog) Scan(ctx context.Context, req ScanRequest, fn func([]ScannedRecord) error) error {
	if b.scanErr != nil {
		return b.scanErr
	}
	return b.fakeLog.Scan(ctx, req, fn)
}

// A gap fill that cannot read the log fails with a transient error, so the
// record that revealed the gap is tried again instead of being poisoned;
// an error of the records it applies keeps its own kind.
func TestFillGapReadErrorsAreTransient(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	unreachable := errors.New("dial tcp 127.0.0.1:9092: connection refused")
	topic := domain.ContactCreated.Topic()
	p := NewProjector("contacts", newMemStore(), nil)

	for _, tt := range []struct {
		name string
		log  *brokenLog
		gap  GapError
	}{
		{"scan", &brokenLog{scanErr: unreachable}, GapError{Partition: Partition{Topic: topic}, From: 0, To: 3}},
		{"bounds", &brokenLog{boundsErr: unreachable}, GapError{Partition: Partition{Topic: topic}, From: -1, To: 3}},
	} {
		_, err := FillGap(context.Background(), p, tt.log, &tt.gap)
		if !errors.Is(err, unreachable) || !IsTransient(err) {
			t.Errorf("%s fails: FillGap = %v, want it transient and wrapping the read error", tt.name, err)
		}
	}

	// The records themselves are fine once the log answers.
	log := &brokenLog{}
	log.add(domain.ContactCreated, "e1", t0, `{"id":"con_1"}`)
	log.add(domain.ContactCreated, "e2", t0, `{"id":"con_2"}`)
	if n, err := FillGap(context.Background(), p, log, &GapError{Partition: Partition{Topic: topic}, From: 0, To: 2}); err != nil || n != 2 {
		t.Fatalf("FillGap = %d, %v; want 2 records filled", n, err)
	}
}

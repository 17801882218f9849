package projections

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// trimmedLog is a fakeLog whose records before start are gone (retention,
// records deleted): its bounds start there, and a scan from below it
// reads from there, as a consumer reset to the log start does.
type trimmedLog struct {
	fakeLog
	start int64
}

func (l *trimmedLog) Bounds(ctx context.Context, topics []string, from, to time.Time) (Bounds, error) {
	b, err := l.fakeLog.Bounds(ctx, topics, from, to)
	for p := range b.Start {
		b.Start[p] = max(b.Start[p], l.start)
	}
	return b, err
}

// A gap whose records are no longer on the log closes all the same: the
// record that revealed it can then be applied, instead of revealing the
// same gap again until it is poisoned.
func TestFillGapClosesAGapTheLogNoLongerHolds(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	topic := domain.ContactCreated.Topic()
	part := Partition{Topic: topic}
	for _, tt := range []struct {
		name       string
		checkpoint int64 // -1: none
	}{
		{"no checkpoint, log starting later", -1},
		{"checkpoint below the log start", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := &trimmedLog{start: 3}
			for _, id := range []string{"e0", "e1", "e2", "e3", "e4"} {
				log.add(domain.ContactCreated, id, t0, `{"id":"con_`+id+`"}`)
			}
			log.recs = log.recs[3:]
			store := &cpStore{memStore: newMemStore(), checkpoints: map[string]map[Partition]int64{}, paused: new(atomic.Bool)}
			if tt.checkpoint >= 0 {
				store.checkpoints["contacts"] = map[Partition]int64{part: tt.checkpoint}
			}
			p := NewProjector("contacts", store, nil)
			live := p.WithGapCheck()
			rec := log.recs[0].Record // offset 3, the first on the log
			_, err := live.Apply(context.Background(), rec)
			gap, ok := AsGap(err)
			if !ok {
				t.Fatalf("Apply = %v, want a gap", err)
			}
			if _, err := FillGap(context.Background(), p, log, gap); err != nil {
				t.Fatalf("FillGap = %v", err)
			}
			out, err := live.Apply(context.Background(), rec)
			if err != nil {
				t.Fatalf("Apply after the fill = %v, want the record applied", err)
			}
			if out[0] != OutcomeApplied {
				t.Fatalf("outcome %s, want applied", out[0])
			}
			if got := store.checkpoints["contacts"][part]; got != 4 {
				t.Fatalf("checkpoint %d, want 4", got)
			}
		})
	}
}

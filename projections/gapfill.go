package projections

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FillGap applies, with p's rules, the records of gap read directly from the
// log, so that the record which revealed it can follow. A record that fails
// for reasons of its own (not an envelope, unprojectable, refused by the
// database) is passed over: it lies below the consumer group's offset, so
// the live path delivered it and, failing, sent it to the poison queue,
// whose consumer records it as FAILED. Records the log no longer holds
// (retention, records deleted) are passed over too. So a gap always
// closes; while the database or the log is unavailable the fill fails with
// a transient error and is tried again: a failure to read the log says
// nothing about the record that revealed the gap, which must not be
// poisoned for it.
func FillGap(ctx context.Context, p *Projector, log LogScanner, gap *GapError) (filled int64, err error) {
	p = p.checkingGaps(false)
	from := gap.From
	if from < 0 {
		b, err := log.Bounds(ctx, []string{gap.Topic}, time.Time{}, time.Time{})
		if err != nil {
			return 0, Unavailable(fmt.Sprintf("fill gap %v", gap), err)
		}
		from = b.Start[gap.Partition]
	}
	// last is the offset of the last record applied or passed over.
	last := gap.From - 1
	if from < gap.To {
		bounds := Bounds{Start: map[Partition]int64{gap.Partition: from}, End: map[Partition]int64{gap.Partition: gap.To}}
		var applyErr error
		err = log.Scan(ctx, ScanRequest{Bounds: bounds, BatchSize: 1000}, func(batch []ScannedRecord) error {
			applyErr = fillBatch(ctx, p, batch)
			if applyErr == nil {
				filled += int64(len(batch))
				for _, s := range batch {
					last = max(last, s.Offset)
				}
			}
			return applyErr
		})
		switch {
		case err == nil:
		case applyErr == nil && ctx.Err() == nil:
			return filled, Unavailable(fmt.Sprintf("fill gap %v", gap), err)
		default:
			return filled, fmt.Errorf("fill gap %v: %w", gap, err)
		}
	}
	if last < gap.To-1 {
		// The log no longer holds the records up to To (retention,
		// records deleted): they can never be applied, so the checkpoint
		// passes them, or the gap would never close and the record that
		// revealed it would be poisoned for it.
		if err := pass(ctx, p, Record{Partition: gap.Partition, Offset: gap.To - 1}); err != nil {
			return filled, fmt.Errorf("fill gap %v: %w", gap, err)
		}
	}
	return filled, nil
}

// fillBatch applies one scanned batch of a gap, passing over the records
// that are not envelopes.
func fillBatch(ctx context.Context, p *Projector, batch []ScannedRecord) error {
	recs := make([]Record, 0, len(batch))
	for _, s := range batch {
		if s.Err == nil {
			recs = append(recs, s.Record)
			continue
		}
		if err := fillApply(ctx, p, recs); err != nil {
			return err
		}
		recs = recs[:0]
		if err := pass(ctx, p, s.Record); err != nil {
			return err
		}
	}
	return fillApply(ctx, p, recs)
}

// fillApply applies recs in one transaction or, if one of them fails for
// reasons of its own, one by one, passing over those that fail. A panic
// while applying is such a failure (a PanicError), so a record that
// panics, which the poison queue already has, does not fail the record
// that revealed the gap.
func fillApply(ctx context.Context, p *Projector, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	apply := func(recs ...Record) error {
		return retryTransient(ctx, func() (err error) {
			defer func() {
				if perr := Recovered(recover()); perr != nil {
					err = perr
				}
			}()
			_, err = p.Apply(ctx, recs...)
			return err
		})
	}
	err := apply(recs...)
	if err == nil || !OwnFailure(ctx, err) {
		return err
	}
	for _, r := range recs {
		if err := apply(r); err != nil {
			if !OwnFailure(ctx, err) {
				return err
			}
			if err := pass(ctx, p, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// OwnFailure reports whether err, from applying records under ctx, may be
// one record's own rather than the database's or the caller's: it is
// neither transient nor a cancellation, and ctx is still live.
func OwnFailure(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, context.Canceled) && !IsTransient(err)
}

// pass advances r's partition checkpoint past r without recording it.
func pass(ctx context.Context, p *Projector, r Record) error {
	skip := Record{Partition: r.Partition, Offset: r.Offset}
	return retryTransient(ctx, func() error {
		return p.Fail(ctx, Failure{Record: skip, Origin: r.Partition, OriginOffset: r.Offset, Attempts: 1})
	})
}

// AsGap returns the gap err reports, if any.
func AsGap(err error) (*GapError, bool) {
	var gap *GapError
	ok := errors.As(err, &gap)
	return gap, ok
}

package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/roisystems/softprohub/domain"
)

// PermanentError marks an event that can never be projected, whatever is
// retried: its payload is malformed. The live path sends it to the poison
// queue at once.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether retrying the work that returned err cannot
// help: err is or wraps a PermanentError or domain.ErrUnprojectable.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) || errors.Is(err, domain.ErrUnprojectable)
}

// ErrUnavailable marks a failure of a dependency (the database down,
// unreachable or overloaded) rather than of the event. Store adapters wrap
// such errors with it. The live path retries these without ever poisoning
// the event: skipping it would lose data that is perfectly valid.
var ErrUnavailable = errors.New("store unavailable")

// ErrCheckpointMoved is returned when a checkpoint was advanced by someone
// else between load and save; the whole transaction is retried.
var ErrCheckpointMoved = errors.New("checkpoint moved")

// Unavailable wraps err with ErrUnavailable, keeping both in the chain.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// IsTransient reports whether err says nothing about the event itself: a
// dependency was unavailable, a checkpoint race was lost, or an attempt ran
// out of time. Such events must be retried until they succeed.
func IsTransient(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCheckpointMoved) ||
		errors.Is(err, context.DeadlineExceeded)
}

// PanicError is a panic recovered while applying records. It is neither
// transient nor permanent: the live path retries the event, then poisons
// it, as it does with any failure of the event's own.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack, for the log.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("projection panicked: %v", e.Value) }

// Recovered turns v, a value recover returned, into a PanicError with the
// current stack; nil stays nil. Call it in the deferred function itself.
func Recovered(v any) *PanicError {
	if v == nil {
		return nil
	}
	return &PanicError{Value: v, Stack: debug.Stack()}
}

package events

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/roisystems/softprohub/projections"
)

// attempts runs one message through r's retry middleware over a handler
// that fails every time with err, and returns when each attempt began.
func attempts(t *testing.T, cfg Config, err error) ([]time.Time, error) {
	t.Helper()
	cfg.Topics = []string{"t"}
	cfg.setDefaults()
	r := &Router{cfg: cfg}
	var at []time.Time
	h := r.retry()(func(*message.Message) ([]*message.Message, error) {
		at = append(at, time.Now())
		return nil, err
	})
	_, got := h(message.NewMessage("m", nil))
	return at, got
}

// The original schedule: MaxRetries attempts in all, the first at once, then
// RetryDelay doubling (2, 4, 8, 16 s at the defaults).
func TestRetryMakesEveryAttemptRetryDelayDoublingApart(t *testing.T) {
	t.Parallel()
	const delay = 50 * time.Millisecond
	fail := errors.New("database unavailable")
	at, err := attempts(t, Config{MaxRetries: 5, RetryDelay: delay, HandlerTimeout: time.Second, RebalanceTimeout: time.Minute}, fail)
	if !errors.Is(err, fail) {
		t.Fatalf("error %v, want the handler's", err)
	}
	if len(at) != 5 {
		t.Fatalf("%d attempts, want 5", len(at))
	}
	for i := 1; i < len(at); i++ {
		want := delay << (i - 1)
		// Timers fire late, never early; a backoff step taken twice per
		// attempt makes the waits 2, 4, 8 times as long.
		if got := at[i].Sub(at[i-1]); got < want || got >= 2*want {
			t.Errorf("wait before attempt %d: %v, want %v", i+1, got, want)
		}
	}
}

func TestRetryStopsAtPermanentErrorsAndShutdowns(t *testing.T) {
	t.Parallel()
	for _, fail := range []error{
		projections.Permanent(errors.New("not an object")),
		fmt.Errorf("apply: %w", context.Canceled),
	} {
		at, err := attempts(t, Config{MaxRetries: 5, RetryDelay: time.Millisecond, HandlerTimeout: time.Second, RebalanceTimeout: time.Minute}, fail)
		if len(at) != 1 || err == nil || err.Error() != fail.Error() || projections.IsPermanent(err) != projections.IsPermanent(fail) {
			t.Errorf("%v: %d attempts, error %v; want one attempt and the error itself", fail, len(at), err)
		}
	}
}

// With the defaults (QUEUE_MAX_RETRIES 5, QUEUE_RETRY_DELAY 2 s) the
// retry budget under the rebalance timeout holds the 30 s of waits.
func TestDefaultRebalanceTimeoutHoldsTheOriginalSchedule(t *testing.T) {
	t.Parallel()
	cfg := Config{Topics: []string{"t"}, MaxRetries: 5, RetryDelay: 2 * time.Second}
	cfg.setDefaults()
	if waits := (2 + 4 + 8 + 16) * time.Second; cfg.retryBudget() < waits {
		t.Fatalf("retry budget %v under a %v rebalance timeout, want at least the %v of waits", cfg.retryBudget(), cfg.RebalanceTimeout, waits)
	}
}

// However many attempts QUEUE_MAX_RETRIES allows, the waits keep doubling
// until the retry budget ends them: the cap on a wait does not overflow
// into a hot loop of 1 ms retries.
func TestRetryWaitsKeepDoublingWithManyAttempts(t *testing.T) {
	t.Parallel()
	const delay = 50 * time.Millisecond
	fail := errors.New("database unavailable")
	// A 1 s retry budget: waits of 50, 100, 200 and 400 ms fit in it.
	at, _ := attempts(t, Config{MaxRetries: 40, RetryDelay: delay, HandlerTimeout: time.Second, RebalanceTimeout: 7 * time.Second}, fail)
	if len(at) < 2 || len(at) > 6 {
		t.Fatalf("%d attempts within a 1s retry budget at 50ms doubling, want 2 to 6", len(at))
	}
	for i := 1; i < len(at); i++ {
		if want, got := delay<<(i-1), at[i].Sub(at[i-1]); got < want {
			t.Errorf("wait before attempt %d: %v, want %v", i+1, got, want)
		}
	}
}

// QUEUE_RETRY_DELAY=0 retries at once: NoRetryDelay is kept, not taken for
// unset.
func TestNoRetryDelayRetriesAtOnce(t *testing.T) {
	t.Parallel()
	fail := errors.New("database unavailable")
	at, _ := attempts(t, Config{MaxRetries: 5, RetryDelay: NoRetryDelay, HandlerTimeout: time.Second, RebalanceTimeout: time.Minute}, fail)
	if len(at) != 5 {
		t.Fatalf("%d attempts, want 5", len(at))
	}
	if took := at[len(at)-1].Sub(at[0]); took > 500*time.Millisecond {
		t.Errorf("5 attempts without a retry delay took %v, want them at once", took)
	}
	cfg := Config{Topics: []string{"t"}, RetryDelay: NoRetryDelay}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("NoRetryDelay refused: %v", err)
	}
	cfg.RetryDelay = -2 * time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("a negative retry delay other than NoRetryDelay is accepted")
	}
}

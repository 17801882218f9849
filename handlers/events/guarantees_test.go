package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/projections"
)

// The chain of the projection handlers: retry, then the timeout middleware
// on each attempt. An attempt stuck on its context is cut at the handler
// timeout, and the next attempt starts with a fresh context rather than
// the one the timeout already cancelled.
func TestRetryGivesEachAttemptAFreshContextCutByTheTimeout(t *testing.T) {
	t.Parallel()
	const cut = 100 * time.Millisecond
	cfg := Config{Topics: []string{"t"}, MaxRetries: 5, RetryDelay: 10 * time.Millisecond, HandlerTimeout: cut, RebalanceTimeout: time.Minute}
	cfg.setDefaults()
	r := &Router{cfg: cfg}
	var a stuckFirst
	h := r.retry()(timeout(cfg.HandlerTimeout)(a.handle))
	if _, err := h(message.NewMessage("m", nil)); err != nil {
		t.Fatalf("delivery failed: %v (attempts %d)", err, len(a.starts))
	}
	if !errors.Is(a.firstErr, context.DeadlineExceeded) {
		t.Fatalf("first attempt ended with %v, want its context's deadline", a.firstErr)
	}
	if a.firstDur < cut || a.firstDur > 10*time.Second {
		t.Fatalf("first attempt cut after %v, want about %v", a.firstDur, cut)
	}
	if len(a.starts) != 2 {
		t.Fatalf("%d attempts, want 2: the second, with a fresh context, succeeds", len(a.starts))
	}
}

// stuckFirst is a handler whose first attempt waits on its context (up to
// 20 s) and whose later attempts succeed unless their context has ended.
type stuckFirst struct {
	starts   []time.Time
	firstErr error
	firstDur time.Duration
}

func (a *stuckFirst) handle(msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	a.starts = append(a.starts, time.Now())
	if len(a.starts) > 1 {
		return nil, ctx.Err()
	}
	select {
	case <-ctx.Done():
		a.firstErr = ctx.Err()
	case <-time.After(20 * time.Second):
		a.firstErr = errors.New("not cut")
	}
	a.firstDur = time.Since(a.starts[0])
	return nil, a.firstErr
}

// No attempt starts later than the retry budget after the first, however
// many retries are left: the retries stop rather than outlast the
// rebalance timeout.
func TestRetryStopsWithinTheBudget(t *testing.T) {
	t.Parallel()
	const budget = 500 * time.Millisecond
	cfg := Config{Topics: []string{"t"}, MaxRetries: 10, RetryDelay: 100 * time.Millisecond,
		HandlerTimeout: time.Second, RebalanceTimeout: time.Second + 5*time.Second + budget}
	cfg.setDefaults()
	if got := cfg.retryBudget(); got != budget {
		t.Fatalf("retry budget %v, want %v", got, budget)
	}
	r := &Router{cfg: cfg}
	fail := errors.New("database unavailable")
	var at []time.Time
	h := r.retry()(func(*message.Message) ([]*message.Message, error) {
		at = append(at, time.Now())
		if at[len(at)-1].Sub(at[0]) > budget {
			// An attempt past the budget: end the test's delivery here
			// rather than wait out the ten attempts.
			return nil, nil
		}
		return nil, fail
	})
	_, err := h(message.NewMessage("m", nil))
	for i, a := range at {
		if d := a.Sub(at[0]); d > budget {
			t.Fatalf("attempt %d started %v after the first, past the %v budget", i+1, d, budget)
		}
	}
	if !errors.Is(err, fail) {
		t.Fatalf("error %v, want the handler's", err)
	}
	if len(at) < 2 {
		t.Fatalf("%d attempts, want retries within the budget", len(at))
	}
}

// At the defaults (QUEUE_MAX_RETRIES 5, QUEUE_RETRY_DELAY 2 s, a 30 s
// handler timeout, the 90 s rebalance timeout) no attempt starts more than
// 55 s after the first.
func TestDefaultRetryBudgetIs55s(t *testing.T) {
	t.Parallel()
	cfg := Config{Topics: []string{"t"}}
	cfg.setDefaults()
	if cfg.HandlerTimeout != 30*time.Second || cfg.RebalanceTimeout != 90*time.Second || cfg.MaxRetries != 5 || cfg.RetryDelay != 2*time.Second {
		t.Fatalf("defaults: handler timeout %v, rebalance timeout %v, %d retries, delay %v; want 30s, 90s, 5, 2s",
			cfg.HandlerTimeout, cfg.RebalanceTimeout, cfg.MaxRetries, cfg.RetryDelay)
	}
	if got := cfg.retryBudget(); got != 55*time.Second {
		t.Fatalf("retry budget at the defaults: %v, want 55s", got)
	}
}

// The same through a topic handler's middleware as the router wires it:
// the timeout cuts an attempt stuck on its context, and the retry that
// follows runs with a fresh one.
func TestRouterHandlerChainCutsAttemptsAndRetriesWithAFreshContext(t *testing.T) {
	t.Parallel()
	const cut = 100 * time.Millisecond
	r, err := NewRouter(Config{Topics: []string{"softpro.a.v1"}, HandlerTimeout: cut, RetryDelay: 10 * time.Millisecond,
		RebalanceTimeout: time.Minute}, Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store:  &gatedStore{},
		Subscribers: func(string, func(string, int32, int64), func(string, int32)) (message.Subscriber, error) {
			return nil, nil
		},
		Publisher:  struct{ message.Publisher }{},
		Registerer: prometheus.NewRegistry(),
		Log:        struct{ projections.LogScanner }{},
	})
	if err != nil {
		t.Fatal(err)
	}
	var hd *handler
	for i := range r.handlers {
		if r.handlers[i].topic == "softpro.a.v1" {
			hd = &r.handlers[i]
		}
	}
	if hd == nil {
		t.Fatal("no handler of the topic")
	}
	var a stuckFirst
	h := message.HandlerFunc(a.handle)
	// As watermill applies them: the first middleware is the outermost.
	for i := len(hd.middleware) - 1; i >= 0; i-- {
		h = hd.middleware[i](h)
	}
	msg := message.NewMessage("m", nil)
	msg.Metadata.Set(metaTopic, "softpro.a.v1")
	if _, err := h(msg); err != nil {
		t.Fatalf("delivery failed after %d attempts: %v", len(a.starts), err)
	}
	if !errors.Is(a.firstErr, context.DeadlineExceeded) || a.firstDur < cut || a.firstDur > 10*time.Second {
		t.Fatalf("first attempt ended with %v after %v, want cut at its %v deadline", a.firstErr, a.firstDur, cut)
	}
	if len(a.starts) != 2 {
		t.Fatalf("%d attempts, want 2: the second, with a fresh context, succeeds", len(a.starts))
	}
}

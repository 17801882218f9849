// Package events runs the live projections: a watermill router with one
// handler per event topic, each in its own consumer group, feeding records
// to the projections through retry and poison-queue middleware, and a
// poison consumer that marks dead letters FAILED in the audit.
package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// SubscriberFactory builds a subscriber in consumer group group. onLag,
// when the subscriber can tell, is called with each claimed partition's
// lag, as messages are handed out and periodically while one is handled;
// onRelease is called once a partition's claim ended, after its last
// onLag. infra/kafka.NewWatermillSubscriberFactory returns one.
type SubscriberFactory = func(group string, onLag func(topic string, partition int32, lag int64), onRelease func(topic string, partition int32)) (message.Subscriber, error)

// Config tunes the router. Zero values take the defaults noted.
type Config struct {
	// Topics are the event topics to project, one handler each (default
	// domain.EventTopics).
	Topics []string
	// PoisonTopic receives dead letters (default domain.TopicPoison).
	PoisonTopic string
	// MaxRetries is QUEUE_MAX_RETRIES: attempts in all before an event is
	// poisoned (default 5).
	MaxRetries int
	// RetryDelay is QUEUE_RETRY_DELAY: the wait after the first failed
	// attempt, doubling after each (default 2 s: 2, 4, 8, 16 s).
	// NoRetryDelay makes every attempt at once.
	RetryDelay time.Duration
	// Concurrency is QUEUE_CONCURRENCY: how many projection transactions
	// this process runs at once, across all topics (default 5). Each
	// transaction applies every message its topic's partitions handed over
	// meanwhile (group commit), up to MaxBatch; a topic has at most one
	// transaction in flight, so a flood on one family leaves slots for
	// the others.
	Concurrency int
	// MaxBatch bounds the messages applied in one transaction (default 256).
	MaxBatch int
	// HandlerTimeout bounds one attempt (default 30 s, the original job
	// timeout).
	HandlerTimeout time.Duration
	// RebalanceTimeout is the consumer groups' rebalance timeout (default
	// DefaultRebalanceTimeout). A message's retries stop early rather than
	// outlast it.
	RebalanceTimeout time.Duration
	// CloseTimeout bounds the wait for in-flight messages at shutdown
	// (default 30 s).
	CloseTimeout time.Duration
	// CheckEvery is how often each topic compares the checkpoints with the
	// records it committed, to fill from the log what a database crash
	// lost of them (default 30 s).
	CheckEvery time.Duration
	// StartRetryDelay is the wait after a failed start (Deps.Ready or a
	// subscription failed: the broker does not answer), doubling after
	// each up to 30 s (default 1 s).
	StartRetryDelay time.Duration
}

// DefaultRebalanceTimeout leaves room, after the 30 s handler timeout and
// a 5 s margin, for the original retry schedule: five attempts, 2, 4, 8
// and 16 s apart (QUEUE_MAX_RETRIES and QUEUE_RETRY_DELAY's defaults).
const DefaultRebalanceTimeout = 90 * time.Second

// NoRetryDelay is the RetryDelay of retries without a wait (a zero
// RetryDelay takes the default).
const NoRetryDelay time.Duration = -1

// maxStartRetryDelay caps the doubling StartRetryDelay.
const maxStartRetryDelay = 30 * time.Second

func (c *Config) setDefaults() {
	if c.Topics == nil {
		c.Topics = domain.EventTopics
	}
	if c.PoisonTopic == "" {
		c.PoisonTopic = domain.TopicPoison
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = 2 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 5
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 30 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = 30 * time.Second
	}
	if c.StartRetryDelay == 0 {
		c.StartRetryDelay = time.Second
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("at least one topic is required"))
	}
	for _, t := range c.Topics {
		if t == c.PoisonTopic {
			errs = append(errs, fmt.Errorf("topic %s is the poison topic", t))
		}
	}
	if c.MaxRetries < 1 {
		errs = append(errs, fmt.Errorf("max retries must be at least 1 attempt, got %d", c.MaxRetries))
	}
	if c.RetryDelay < 0 && c.RetryDelay != NoRetryDelay {
		errs = append(errs, fmt.Errorf("retry delay must not be negative (NoRetryDelay aside), got %v", c.RetryDelay))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency must be positive, got %d", c.Concurrency))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch must be positive, got %d", c.MaxBatch))
	}
	if c.HandlerTimeout <= 0 {
		errs = append(errs, fmt.Errorf("handler timeout must be positive, got %v", c.HandlerTimeout))
	}
	if c.StartRetryDelay < 0 {
		errs = append(errs, fmt.Errorf("start retry delay must not be negative, got %v", c.StartRetryDelay))
	}
	if c.retryBudget() <= 0 {
		errs = append(errs, fmt.Errorf("rebalance timeout %v leaves no time for retries after the %v handler timeout", c.RebalanceTimeout, c.HandlerTimeout))
	}
	return errors.Join(errs...)
}

// retryBudget is how long a message may spend between its first attempt
// and its last, so that last attempt still ends within the rebalance
// timeout.
func (c Config) retryBudget() time.Duration {
	return c.RebalanceTimeout - c.HandlerTimeout - 5*time.Second
}

// Deps are the router's collaborators; all but Ready and AsyncStore are
// required.
type Deps struct {
	Logger *slog.Logger
	// Store holds the read models.
	Store projections.Store
	// Subscribers builds one subscriber per consumer group.
	Subscribers SubscriberFactory
	// Publisher publishes to the poison topic. The router does not close it.
	Publisher message.Publisher
	// Registerer receives the softprohub_projection_* and watermill metrics.
	Registerer prometheus.Registerer
	// Log reads the event log directly: a message beyond its partition's
	// checkpoint is preceded by the records in between, read from it.
	Log projections.LogScanner
	// AsyncStore, when set, is what the topic projectors write through
	// instead of Store: a store whose commits may be lost in a database
	// crash (asynchronous commit), since what they lose comes back from
	// the log. The poison consumer always writes through Store.
	AsyncStore projections.Store
	// Ready, when set, is called before every start of the subscriptions
	// and must succeed for the start to go on (for instance: the broker
	// answers and the topics exist). A failure counts as a failed start,
	// and a cheap one: a watermill router that fails to subscribe keeps a
	// goroutine waiting for its handlers.
	Ready func(ctx context.Context) error
}

// ProjectionName is the projection (and checkpoint) name of an event
// topic's handler: "transactions" for softpro.transactions.v1.
func ProjectionName(topic string) string {
	name := strings.TrimPrefix(topic, "softpro.")
	name = strings.TrimSuffix(name, ".v1")
	return name
}

// GroupName is the consumer group of a projection, a wire contract:
// renaming it re-reads the whole log.
func GroupName(projection string) string { return "softprohub." + projection + ".v1" }

// PoisonProjection is the projection name of the poison consumer.
const PoisonProjection = "poison"

// Router runs the live projections.
type Router struct {
	cfg         Config
	log         *slog.Logger
	wlog        watermill.LoggerAdapter
	registerer  prometheus.Registerer
	subscribers SubscriberFactory
	ready       func(context.Context) error
	pub         message.Publisher
	metrics     *promMetrics
	handlers    []handler
	commits     []*committer
	gauges      map[string]*gauges
	// next is the watermill router the next start runs; NewRouter builds
	// the first.
	next *wiring
	// running is closed once a start subscribed every handler.
	running     chan struct{}
	runningOnce sync.Once
	// refolder folds again the entities retried events reached out of
	// log order.
	refolder *projections.Refolder
}

// handler is one consumer of the router: its projection name (and
// consumer group), topic, function and middleware, outermost first.
type handler struct {
	name, topic string
	fn          message.NoPublishHandlerFunc
	middleware  []message.HandlerMiddleware
}

// wiring is a watermill router with a subscriber per handler. A watermill
// router runs once, so every start after a failed one wires a new one.
type wiring struct {
	router *message.Router
	subs   []message.Subscriber
}

// NewRouter builds the router: a handler per topic in cfg.Topics and the
// poison consumer. Nothing connects until Run.
func NewRouter(cfg Config, deps Deps) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new events router: %w", err)
	}
	if deps.Logger == nil || deps.Store == nil || deps.Subscribers == nil || deps.Publisher == nil || deps.Registerer == nil || deps.Log == nil {
		return nil, errors.New("new events router: logger, store, subscribers, publisher, registerer and log are required")
	}
	m, err := newPromMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new events router: %w", err)
	}
	r := &Router{cfg: cfg, log: deps.Logger, wlog: watermill.NewSlogLogger(deps.Logger), registerer: deps.Registerer,
		subscribers: deps.Subscribers, ready: deps.Ready, pub: deps.Publisher, metrics: m, gauges: map[string]*gauges{},
		running: make(chan struct{})}
	slots := make(chan struct{}, cfg.Concurrency)
	r.refolder = projections.NewRefolder(projections.NewReplayer(deps.Store, deps.Log, nil), cfg.Topics, func(res projections.RefoldResult) {
		if res.Err != nil {
			m.refolds.WithLabelValues("error").Add(float64(len(res.Entities)))
			deps.Logger.Error("refolding entities reached out of log order failed, will retry",
				"integrationId", res.IntegrationID, "entities", len(res.Entities), "err", res.Err)
			return
		}
		m.refolds.WithLabelValues("ok").Add(float64(len(res.Entities)))
		deps.Logger.Info("refolded entities reached out of log order",
			"integrationId", res.IntegrationID, "entities", len(res.Entities), "from", res.Replay.From,
			"records", res.Replay.Records, "applied", res.Replay.Applied)
	})

	for _, topic := range cfg.Topics {
		name := ProjectionName(topic)
		p := projections.NewProjector(name, cmp.Or[projections.Store](deps.AsyncStore, deps.Store), nil).WithRefold(r.refolder.Add)
		c := newCommitter(p.WithGapCheck(), slots, cfg.MaxBatch, cfg.HandlerTimeout, m.batch.WithLabelValues(topic), m.tx.WithLabelValues(topic))
		c.checkEvery = cfg.CheckEvery
		c.log = deps.Logger.With("topic", topic)
		c.fill = func(ctx context.Context, gap *projections.GapError) error {
			n, err := projections.FillGap(ctx, p, deps.Log, gap)
			m.gapRecords.WithLabelValues(topic).Add(float64(n))
			deps.Logger.Warn("filled a gap between a partition's checkpoint and its consumer group's offset from the log",
				"topic", topic, "partition", gap.Partition.Partition, "from", gap.From, "to", gap.To, "records", n, "error", err)
			return err
		}
		r.commits = append(r.commits, c)
		g := &gauges{}
		r.gauges[topic] = g
		r.handlers = append(r.handlers, handler{name: name, topic: topic, fn: r.project(p, c), middleware: []message.HandlerMiddleware{
			g.countActive,
			r.poison(name),
			recoverer,
			g.leaveBackoff,
			r.retry(),
			g.enterBackoff,
			timeout(cfg.HandlerTimeout),
			r.measure(topic),
		}})
	}

	pp := projections.NewProjector(PoisonProjection, deps.Store, nil)
	r.handlers = append(r.handlers, handler{name: PoisonProjection, topic: cfg.PoisonTopic, fn: r.markFailed(pp), middleware: []message.HandlerMiddleware{
		r.dropUnfixable(),
		recoverer,
		r.retry(),
		timeout(cfg.HandlerTimeout),
	}})
	if r.next, err = r.wire(); err != nil {
		return nil, fmt.Errorf("new events router: %w", err)
	}
	return r, nil
}

// wire builds a watermill router with a new subscriber for each handler.
// Nothing connects until it runs.
func (r *Router) wire() (*wiring, error) {
	wr, err := message.NewRouter(message.RouterConfig{CloseTimeout: r.cfg.CloseTimeout}, r.wlog)
	if err != nil {
		return nil, err
	}
	// The metrics of a later wiring are the first one's (the builder
	// reuses collectors already registered).
	metrics.NewPrometheusMetricsBuilder(r.registerer, "softprohub", "watermill").AddPrometheusRouterMetrics(wr)
	w := &wiring{router: wr}
	for _, h := range r.handlers {
		sub, err := r.subscribers(GroupName(h.name), r.metrics.setLag, r.metrics.forgetLag)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("subscriber for %s: %w", h.topic, err)
		}
		w.subs = append(w.subs, sub)
		wr.AddConsumerHandler(h.name, h.topic, sub, h.fn).AddMiddleware(h.middleware...)
	}
	return w, nil
}

// close closes the subscribers of a wiring that did not start (a started
// one closes its own as it stops).
func (w *wiring) close() {
	for _, s := range w.subs {
		_ = s.Close()
	}
}

// Run consumes until ctx is cancelled, then stops taking messages, waits
// up to CloseTimeout for in-flight ones and returns nil. Messages cancelled
// by the shutdown are not acknowledged and are redelivered to whoever owns
// their partition next; their effects are not doubled.
//
// Until every handler is subscribed, Run waits for the broker: when
// Deps.Ready or a subscription fails, it logs a warning and starts again
// after StartRetryDelay, doubling up to 30 s, until ctx ends. Once started
// it returns an error only if the router stops on its own (the
// subscribers reconnect by themselves when the broker comes and goes).
// Run is called once.
func (r *Router) Run(ctx context.Context) error {
	// The committers outlive the router's shutdown so in-flight messages
	// can still commit while it drains.
	cctx, stop := context.WithCancel(context.Background())
	var waits []func()
	for _, c := range r.commits {
		waits = append(waits, c.start(cctx))
	}
	refolded := make(chan struct{})
	go func() {
		defer close(refolded)
		r.refolder.Run(cctx)
	}()
	waits = append(waits, func() { <-refolded })
	err := r.run(ctx)
	stop()
	for _, w := range waits {
		w()
	}
	return err
}

func (r *Router) run(ctx context.Context) error {
	delay := r.cfg.StartRetryDelay
	for {
		started, err := r.start(ctx)
		switch {
		case started && err != nil:
			return fmt.Errorf("run events router: %w", err)
		case started && ctx.Err() == nil:
			return errors.New("run events router: all handlers stopped")
		case started || ctx.Err() != nil:
			return nil
		}
		r.log.Warn("live projections cannot subscribe, will retry", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, maxStartRetryDelay)
	}
}

// start runs a wiring until ctx ends or it stops, and reports whether it
// got to subscribe every handler.
func (r *Router) start(ctx context.Context) (started bool, err error) {
	if r.ready != nil {
		if err := r.ready(ctx); err != nil {
			return false, err
		}
	}
	w := r.next
	r.next = nil
	if w == nil {
		if w, err = r.wire(); err != nil {
			return false, err
		}
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-w.router.Running():
			r.runningOnce.Do(func() { close(r.running) })
		case <-stopped:
		}
	}()
	err = w.router.Run(ctx)
	close(stopped)
	if !w.router.IsRunning() {
		w.close()
		return false, err
	}
	return true, err
}

// Running is closed once every handler is subscribed.
func (r *Router) Running() <-chan struct{} { return r.running }

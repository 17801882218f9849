package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// IntegrationStore is what the management API needs of the integration
// store.
type IntegrationStore interface {
	Create(ctx context.Context, in domain.Integration, secret string) (domain.Integration, error)
	Integration(ctx context.Context, id string) (domain.Integration, error)
	List(ctx context.Context) ([]domain.Integration, error)
	Update(ctx context.Context, id string, fn func(*domain.Integration) error) (domain.Integration, error)
	// UpdateRotating is Update and then a secret rotation, in one
	// transaction.
	UpdateRotating(ctx context.Context, id string, fn func(*domain.Integration) error, secret string, grace time.Duration, now time.Time) (domain.Integration, error)
}

// Receiver is the webhook ingest use case.
type Receiver interface {
	Receive(ctx context.Context, req ingest.Request) (ingest.Result, error)
}

// Check is one named dependency probed by /readyz and the health endpoint.
type Check struct {
	Name string
	// Critical checks make the service unready; others only degrade it.
	Critical bool
	Probe    func(ctx context.Context) error
}

// QueueStat is one topic's figures in the health and stats answers, named
// as the original queue system named them.
type QueueStat struct {
	QueueName string `json:"queueName"`
	Waiting   int64  `json:"waiting"`
	Active    int64  `json:"active"`
	Completed int64  `json:"completed"`
	Failed    int64  `json:"failed"`
	Delayed   int64  `json:"delayed"`
	Paused    bool   `json:"paused"`
	// Appended is the number of events on the topic (its end offsets).
	Appended int64 `json:"appended"`
	// LagUnavailable says the broker did not answer for the consumer
	// group's lag: waiting is 0 because it is unknown, not because
	// nothing waits.
	LagUnavailable bool `json:"lagUnavailable,omitempty"`
	// CountsUnavailable says the database did not answer for the
	// completed and failed counts: they are 0 because they are unknown.
	CountsUnavailable bool `json:"countsUnavailable,omitempty"`
	// PausedUnavailable says the database did not answer for the pause
	// flags: paused is false because it is unknown.
	PausedUnavailable bool `json:"pausedUnavailable,omitempty"`
}

// QueueReporter reports per-topic figures.
type QueueReporter interface {
	Queues(ctx context.Context) ([]QueueStat, error)
}

// Config configures the HTTP edge.
type Config struct {
	JWTSecret []byte
	// SecretGrace is how long a rotated-out webhook secret keeps verifying.
	SecretGrace time.Duration
	// Defaults for new integrations.
	DefaultSyncFrequency   int
	MinSyncInterval        int
	DefaultRateLimit       int
	DefaultIngestRateLimit int
	Now                    func() time.Time
	// WithoutWebhooks and WithoutAPI leave out the webhook route and the
	// /api/v1 routes (a process without role ingest or api); health,
	// readiness, metrics and the OpenAPI document are always served.
	WithoutWebhooks, WithoutAPI bool
}

func (c *Config) setDefaults() {
	if c.SecretGrace == 0 {
		c.SecretGrace = 24 * time.Hour
	}
	if c.DefaultSyncFrequency == 0 {
		c.DefaultSyncFrequency = 15
	}
	if c.MinSyncInterval == 0 {
		c.MinSyncInterval = 5
	}
	if c.DefaultRateLimit == 0 {
		c.DefaultRateLimit = 100
	}
	if c.DefaultIngestRateLimit == 0 {
		c.DefaultIngestRateLimit = 6000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.JWTSecret) == 0 {
		errs = append(errs, errors.New("JWT secret is required"))
	}
	if c.SecretGrace < 0 {
		errs = append(errs, errors.New("secret grace must not be negative"))
	}
	return errors.Join(errs...)
}

// Deps are the handlers' collaborators. Receiver and Integrations are
// required; the rest are optional.
type Deps struct {
	Receiver     Receiver
	Integrations IntegrationStore
	// OnIntegrationChange is called after every change made through the API
	// (the ingest cache invalidates there).
	OnIntegrationChange func(id string)
	Checks              []Check
	Queues              QueueReporter
	Metrics             *Metrics
	Gatherer            prometheus.Gatherer
	Logger              *slog.Logger
	// Mount adds routes of later capabilities to the authenticated API
	// router (under /api/v1).
	Mount []func(r chi.Router)
}

type server struct {
	cfg          Config
	receiver     Receiver
	integrations IntegrationStore
	onChange     func(string)
	checks       []Check
	queues       QueueReporter
	metrics      *Metrics
	log          *slog.Logger
}

// NewHandler builds the HTTP handler of the whole edge.
func NewHandler(cfg Config, d Deps) (http.Handler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Receiver == nil || d.Integrations == nil {
		panic("httpapi.NewHandler: nil receiver or integration store")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if d.Gatherer == nil {
		d.Gatherer = prometheus.DefaultGatherer
	}
	if d.OnIntegrationChange == nil {
		d.OnIntegrationChange = func(string) {}
	}
	s := &server{cfg: cfg, receiver: d.Receiver, integrations: d.Integrations, onChange: d.OnIntegrationChange,
		checks: d.Checks, queues: d.Queues, metrics: d.Metrics, log: d.Logger}

	r := chi.NewRouter()
	r.Use(requestID, s.recoverer)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{}))
	r.Get("/api/webhooks/health", s.health)
	r.Get("/api/openapi.json", serveOpenAPI)
	if !cfg.WithoutWebhooks {
		r.Post("/api/webhooks/softpro/{integrationId}", s.webhook)
	}
	if !cfg.WithoutAPI {
		s.mountAPI(r, d.Mount)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed")
	})
	return r, nil
}

// mountAPI adds the authenticated management and query API under /api/v1,
// with the routes of mounts.
func (s *server) mountAPI(r chi.Router, mounts []func(chi.Router)) {
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.accessLog, authenticate(s.cfg.JWTSecret))
		r.Route("/integrations/softpro", func(r chi.Router) {
			r.Group(func(r chi.Router) {
				r.Use(requireRole(RoleAdmin))
				r.Post("/", s.createIntegration)
				r.Put("/webhooks/config", s.updateWebhookConfig)
				r.With(textPathIDs).Patch("/{id}", s.updateIntegration)
			})
			r.Group(func(r chi.Router) {
				r.Use(requireRole(RoleAdmin, RoleAnalyst))
				r.Get("/", s.listIntegrations)
				r.With(textPathIDs).Get("/{id}", s.getIntegration)
			})
		})
		for _, mount := range mounts {
			mount(r)
		}
	})
}

// maxRequestIDLen bounds a sender's X-Request-Id, which a webhook carries
// onto the log as its correlation id: the event log's record size budget
// leaves a few hundred bytes for the envelope's ids.
const maxRequestIDLen = 128

// requestID is chi's RequestID, taking the sender's X-Request-Id only when
// it is 1 to maxRequestIDLen visible ASCII characters; any other gets a
// request id made here instead.
func requestID(next http.Handler) http.Handler {
	withID := middleware.RequestID(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(middleware.RequestIDHeader); id != "" && !validRequestID(id) {
			r.Header.Del(middleware.RequestIDHeader)
		}
		withID.ServeHTTP(w, r)
	})
}

func validRequestID(id string) bool {
	if len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic in handler", slog.Any("panic", v), slog.String("path", r.URL.Path),
					slog.String("requestId", middleware.GetReqID(r.Context())))
				writeError(w, http.StatusInternalServerError, codeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusClientClosed is what the access log and the request metrics
// record for a request whose client disconnected before the answer (the
// status nginx uses for it); the client sees nothing.
const statusClientClosed = 499

// accessLog logs management API requests and records their metrics. It
// runs outside authenticate: the line names the subject and role of a
// verified token (empty when there was none) through the caller that
// authenticate fills.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		r, who := withCaller(r)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		d := time.Since(start)
		status := ww.Status()
		if status >= 500 && errors.Is(r.Context().Err(), context.Canceled) {
			// The client went away first and its request's work was
			// cancelled: not a failure of the server.
			status = statusClientClosed
		}
		s.metrics.apiRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.metrics.apiDuration.WithLabelValues(route).Observe(d.Seconds())
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "api request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Duration("duration", d),
			slog.String("sub", who.subject), slog.String("role", who.role), slog.String("requestId", middleware.GetReqID(r.Context())))
	})
}

// pathParam is the decoded value of the path parameter name; every
// handler reads its path parameters through it, integration ids included
// (they may hold "/", ":" and other reserved characters). chi routes on
// the escaped path when the request's path holds an escaped "/" (or other
// escapes Go would not have written), and its parameters are then escaped.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// textPathIDs answers 404 when an id in the route's path is text Postgres
// cannot hold (a NUL character, bytes that are not UTF-8): no stored row
// has such an id, so what the path names does not exist. It is for the
// routes that answer an unknown id with 404; the analyst lists answer an
// unknown integration with an empty list and leave such ids to their store.
func textPathIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			for _, k := range rctx.URLParams.Keys {
				if k != "*" && !isText(pathParam(r, k)) {
					writeError(w, http.StatusNotFound, codeNotFound, "not found")
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

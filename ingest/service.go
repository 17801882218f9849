// Package ingest brings SoftPro data into the event log: it verifies
// webhooks, rate-limits and de-duplicates them, and appends each as a domain
// event. It declares the ports it needs; adapters in infra satisfy them.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Code is a stable, machine-readable rejection code, part of the HTTP
// contract.
type Code string

// Rejection codes, in the order the checks run.
const (
	CodeIntegrationNotFound  Code = "INTEGRATION_NOT_FOUND"
	CodeIntegrationDisabled  Code = "INTEGRATION_DISABLED"
	CodePayloadTooLarge      Code = "PAYLOAD_TOO_LARGE"
	CodeRequestTimeout       Code = "REQUEST_TIMEOUT"
	CodeUnsupportedMediaType Code = "UNSUPPORTED_MEDIA_TYPE"
	CodeSignatureMissing     Code = "SIGNATURE_MISSING"
	CodeSignatureInvalid     Code = "SIGNATURE_INVALID"
	CodeTimestampOutOfWindow Code = "TIMESTAMP_OUT_OF_WINDOW"
	CodeInvalidPayload       Code = "INVALID_PAYLOAD"
	CodeRateLimited          Code = "RATE_LIMITED"
	CodeAppendFailed         Code = "APPEND_FAILED"
	CodeUnavailable          Code = "UNAVAILABLE"
)

// Rejection is a webhook that was not accepted. Nothing was appended.
type Rejection struct {
	Code    Code
	Message string
	// RetryAfter is set for RATE_LIMITED and APPEND_FAILED.
	RetryAfter time.Duration
	Err        error
}

func (r *Rejection) Error() string {
	if r.Err != nil {
		return fmt.Sprintf("%s: %s: %v", r.Code, r.Message, r.Err)
	}
	return fmt.Sprintf("%s: %s", r.Code, r.Message)
}

func (r *Rejection) Unwrap() error { return r.Err }

func reject(code Code, msg string, err error) *Rejection {
	return &Rejection{Code: code, Message: msg, Err: err}
}

// Config tunes the receiver. Zero values take the defaults noted.
type Config struct {
	// SignatureTTL is the replay window either side of now (default 5 min).
	SignatureTTL time.Duration
	// DedupTTL is how long an event id is remembered (default 24 h).
	DedupTTL time.Duration
	// MaxBody is the largest accepted body in bytes (default 1 MiB).
	MaxBody int64
	// IngestRateLimit is the default webhooks per minute per integration
	// when the integration sets none (default 6000).
	IngestRateLimit int
	// AppendTimeout bounds the wait for the broker (default 10 s).
	AppendTimeout time.Duration
	// RetryAfter is suggested to senders when the append failed (default 5 s).
	RetryAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.SignatureTTL == 0 {
		c.SignatureTTL = 5 * time.Minute
	}
	if c.DedupTTL == 0 {
		c.DedupTTL = 24 * time.Hour
	}
	if c.MaxBody == 0 {
		c.MaxBody = 1 << 20
	}
	if c.IngestRateLimit == 0 {
		c.IngestRateLimit = 6000
	}
	if c.AppendTimeout == 0 {
		c.AppendTimeout = 10 * time.Second
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.SignatureTTL < 0 {
		errs = append(errs, errors.New("signature TTL must not be negative"))
	}
	if c.DedupTTL < time.Second {
		errs = append(errs, errors.New("dedup TTL must be at least 1s"))
	}
	if c.MaxBody < 1 {
		errs = append(errs, errors.New("max body must be positive"))
	}
	if c.IngestRateLimit < 1 {
		errs = append(errs, errors.New("ingest rate limit must be positive"))
	}
	return errors.Join(errs...)
}

// Receiver turns webhook requests into appended events. It is safe for
// concurrent use.
type Receiver struct {
	cfg          Config
	integrations IntegrationSource
	gate         Gate
	log          Appender
	bufs         sync.Pool
}

// NewReceiver builds a Receiver. All collaborators are required.
func NewReceiver(cfg Config, integrations IntegrationSource, gate Gate, log Appender) (*Receiver, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if integrations == nil || gate == nil || log == nil {
		panic("ingest.NewReceiver: nil collaborator")
	}
	return &Receiver{cfg: cfg, integrations: integrations, gate: gate, log: log,
		bufs: sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}}, nil
}

// Request is one incoming webhook.
type Request struct {
	IntegrationID string
	ContentType   string
	Header        Headers
	Body          io.Reader
	// CorrelationID is the request id, carried into the event.
	CorrelationID string
}

// Result describes an accepted webhook.
type Result struct {
	IntegrationID string
	EventID       string
	EventType     string
	// Duplicate is true when the event was seen before and nothing was
	// appended this time.
	Duplicate bool
	Position  Position
	// Degraded holds the gate's error when Redis could not be reached: the
	// event was appended without rate limiting or dedup.
	Degraded error
	// Unconfirmed holds the error of confirming the dedup fingerprint after
	// the append (rate limit and dedup did run): the event is on the log,
	// and a copy sent after the pending fingerprint expires is appended
	// again (the projections apply each event id once).
	Unconfirmed error
}

// Receive runs the checks of a webhook in the contract's order, then
// appends it. It returns a *Rejection for every refusal; the event is on the
// log if and only if the error is nil and Result.Duplicate is false.
func (r *Receiver) Receive(ctx context.Context, req Request) (Result, error) {
	in, err := r.integrations.Integration(ctx, req.IntegrationID)
	if errors.Is(err, domain.ErrNotFound) {
		return Result{}, reject(CodeIntegrationNotFound, fmt.Sprintf("integration %q not found", req.IntegrationID), nil)
	}
	if err != nil {
		return Result{}, &Rejection{Code: CodeUnavailable, Message: "integration lookup failed", RetryAfter: r.cfg.RetryAfter, Err: err}
	}
	if !in.Active {
		return Result{}, reject(CodeIntegrationDisabled, "integration is inactive", nil)
	}
	if !in.WebhookEnabled {
		return Result{}, reject(CodeIntegrationDisabled, "webhooks are disabled for this integration", nil)
	}

	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	body, err := readLimited((*bp)[:0], req.Body, r.cfg.MaxBody)
	*bp = body[:0]
	if errors.Is(err, errTooLarge) {
		return Result{}, reject(CodePayloadTooLarge, fmt.Sprintf("body exceeds %d bytes", r.cfg.MaxBody), nil)
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return Result{}, reject(CodeRequestTimeout, "the body did not arrive within the server's read timeout", err)
	}
	if err != nil {
		return Result{}, reject(CodeInvalidPayload, "could not read body", err)
	}
	if !isJSON(req.ContentType) {
		return Result{}, reject(CodeUnsupportedMediaType, "content type must be application/json", nil)
	}

	now := r.cfg.Now()
	v, err := Verify(in.SignatureScheme, req.Header, body, in.ValidSecrets(now))
	switch {
	case errors.Is(err, ErrSignatureMissing):
		return Result{}, reject(CodeSignatureMissing, "signature header missing", nil)
	case err != nil:
		return Result{}, reject(CodeSignatureInvalid, "signature does not match", nil)
	}
	if !v.Timestamp.IsZero() && !InWindow(v.Timestamp, now, r.cfg.SignatureTTL) {
		return Result{}, reject(CodeTimestampOutOfWindow, fmt.Sprintf("timestamp is more than %s from now", r.cfg.SignatureTTL), nil)
	}
	p, err := ParsePayload(body)
	if err != nil {
		return Result{}, reject(CodeInvalidPayload, strings.TrimPrefix(err.Error(), ErrInvalidPayload.Error()+": "), nil)
	}
	if v.Timestamp.IsZero() && !InWindow(p.Timestamp, now, r.cfg.SignatureTTL) {
		return Result{}, reject(CodeTimestampOutOfWindow, fmt.Sprintf("timestamp is more than %s from now", r.cfg.SignatureTTL), nil)
	}
	eventID := p.ID
	if v.WebhookID != "" {
		// The sender's message id is the event id: it meets the same rules.
		if problem := eventIDProblem("webhook-id", v.WebhookID); problem != "" {
			return Result{}, reject(CodeInvalidPayload, problem, nil)
		}
		eventID = v.WebhookID
	}
	res := Result{IntegrationID: in.ID, EventID: eventID, EventType: p.Type}

	limit := in.IngestRateLimit
	if limit <= 0 {
		limit = r.cfg.IngestRateLimit
	}
	ticket := Ticket{IntegrationID: in.ID, EventID: eventID, Limit: limit, Window: time.Minute, DedupTTL: r.cfg.DedupTTL}
	confirmer, _ := r.gate.(Confirmer)
	if confirmer != nil {
		// The fingerprint stays pending until the broker has the event, so
		// a redelivery meanwhile is not acknowledged for an event that may
		// never reach the log, and a process that dies mid-append does not
		// leave it hiding the event for DedupTTL.
		ticket.PendingTTL = r.cfg.AppendTimeout + pendingMargin
	}
	adm, gerr := r.gate.Admit(ctx, ticket)
	if gerr == nil && adm.Allowed && adm.InFlight {
		adm, gerr = r.awaitInFlight(ctx, ticket)
		if gerr == nil && adm.InFlight {
			return Result{}, &Rejection{Code: CodeAppendFailed, Message: "another delivery of this event is being appended; retry later",
				RetryAfter: r.cfg.RetryAfter, Err: ctx.Err()}
		}
	}
	if gerr != nil && ctx.Err() != nil {
		// The sender hung up during the round trip: Redis was not found
		// unreachable, and the fingerprint may be another delivery's, so
		// appending without the gate could put the event on the log twice.
		return Result{}, &Rejection{Code: CodeAppendFailed, Message: "the request ended before the dedup check; retry later",
			RetryAfter: r.cfg.RetryAfter, Err: errors.Join(gerr, ctx.Err())}
	}
	if gerr != nil {
		res.Degraded = gerr
	} else {
		if !adm.Allowed {
			rj := reject(CodeRateLimited, fmt.Sprintf("more than %d webhooks per minute", limit), nil)
			rj.RetryAfter = adm.RetryAfter
			return Result{}, rj
		}
		if adm.Duplicate {
			res.Duplicate = true
			return res, nil
		}
	}

	typ := domain.EventType(p.Type)
	env := domain.Envelope{
		Schema: domain.SchemaV1, EventID: eventID, IntegrationID: in.ID, Type: typ,
		OccurredAt: p.Timestamp, ReceivedAt: now.UTC(), Source: domain.SourceWebhook,
		Priority: typ.Priority(), SignatureScheme: in.SignatureScheme, KeyID: v.KeyID,
		CorrelationID: req.CorrelationID,
		// body is a pooled buffer, reused once Receive returns.
		Payload: append([]byte(nil), body...),
	}
	// The append does not end with the request: a sender that hangs up
	// would otherwise fail every record buffered behind its own on the
	// partition (other senders' webhooks), and its retry finds the event
	// appended.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.AppendTimeout)
	pos, err := r.log.Append(actx, env)
	cancel()
	if err != nil {
		if gerr == nil {
			// Forget the fingerprint so the sender's retry is accepted. Use a
			// fresh context: the request's may be what failed.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if rerr := r.gate.Release(rctx, in.ID, eventID); rerr != nil {
				err = errors.Join(err, fmt.Errorf("release dedup key: %w", rerr))
			}
			rcancel()
		}
		if errors.Is(err, ErrRecordTooLarge) {
			return Result{}, &Rejection{Code: CodePayloadTooLarge, Message: "the event is too large for the event log", Err: err}
		}
		return Result{}, &Rejection{Code: CodeAppendFailed, Message: "the event log is unavailable; retry later", RetryAfter: r.cfg.RetryAfter, Err: err}
	}
	if gerr == nil && confirmer != nil {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if cerr := confirmer.Confirm(cctx, ticket); cerr != nil {
			// The event is on the log; only the dedup of later copies is lost
			// once the pending fingerprint expires.
			res.Unconfirmed = fmt.Errorf("confirm dedup fingerprint: %w", cerr)
		}
		ccancel()
	}
	res.Position = pos
	return res, nil
}

// pendingMargin is how long a pending fingerprint outlives the append
// timeout: time for the release or confirmation after it.
const pendingMargin = 5 * time.Second

// awaitInFlight waits while another delivery of t's event appends it,
// checking the fingerprint again (without taking a token) with a growing
// pause. It returns as soon as the fingerprint is kept (a duplicate), was
// released and is now this delivery's, or the gate fails; or, still in
// flight, once the pending fingerprint should have expired or ctx ends.
func (r *Receiver) awaitInFlight(ctx context.Context, t Ticket) (Admission, error) {
	t.NoToken = true
	// Wall time, not cfg.Now: this bounds a wait.
	deadline := time.Now().Add(t.PendingTTL)
	pause := 5 * time.Millisecond
	for {
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return Admission{Allowed: true, InFlight: true}, nil
		case <-timer.C:
		}
		adm, err := r.gate.Admit(ctx, t)
		if err != nil || !adm.InFlight || !time.Now().Before(deadline) {
			return adm, err
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

var errTooLarge = errors.New("body too large")

func readLimited(buf []byte, r io.Reader, max int64) ([]byte, error) {
	if r == nil {
		return buf, nil
	}
	for {
		if int64(len(buf)) > max {
			return buf, errTooLarge
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if int64(len(buf)) > max {
				return buf, errTooLarge
			}
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

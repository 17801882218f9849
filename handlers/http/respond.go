// Package httpapi is softprohub's HTTP edge: the SoftPro webhook receiver,
// the JWT-protected management API, health and metrics. It maps domain and
// ingest errors to status codes and stable error codes in one place.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// envelope is the response shape of the original API.
type envelope struct {
	Success bool    `json:"success"`
	Data    any     `json:"data,omitempty"`
	Error   *apiErr `json:"error,omitempty"`
}

type apiErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeData(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, envelope{Success: true, Data: data})
}

// Error codes of the management API (the webhook receiver uses ingest's).
const (
	codeBadRequest   = "BAD_REQUEST"
	codeNotFound     = "NOT_FOUND"
	codeConflict     = "CONFLICT"
	codeUnauthorized = "UNAUTHORIZED"
	codeForbidden    = "FORBIDDEN"
	codeInternal     = "INTERNAL"
	codeUnavailable  = "UNAVAILABLE"
	codeBadGateway   = "BAD_GATEWAY"
)

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, envelope{Success: false, Error: &apiErr{Code: code, Message: msg}})
}

// ingestStatus maps a rejection code to its HTTP status: the contract of
// the webhook endpoint.
var ingestStatus = map[ingest.Code]int{
	ingest.CodeIntegrationNotFound:  http.StatusNotFound,
	ingest.CodeIntegrationDisabled:  http.StatusForbidden,
	ingest.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	ingest.CodeRequestTimeout:       http.StatusRequestTimeout,
	ingest.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	ingest.CodeSignatureMissing:     http.StatusUnauthorized,
	ingest.CodeSignatureInvalid:     http.StatusUnauthorized,
	ingest.CodeTimestampOutOfWindow: http.StatusUnauthorized,
	ingest.CodeInvalidPayload:       http.StatusBadRequest,
	ingest.CodeRateLimited:          http.StatusTooManyRequests,
	ingest.CodeAppendFailed:         http.StatusServiceUnavailable,
	ingest.CodeUnavailable:          http.StatusServiceUnavailable,
}

func writeRejection(w http.ResponseWriter, rj *ingest.Rejection) int {
	status, ok := ingestStatus[rj.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if rj.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(rj.RetryAfter))
	}
	writeError(w, status, string(rj.Code), rj.Message)
	return status
}

func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// writeDomainError maps store and validation errors of the management API.
func writeDomainError(w http.ResponseWriter, err error) {
	var verr *domain.ValidationError
	switch {
	case errors.As(err, &verr):
		writeError(w, http.StatusBadRequest, codeBadRequest, verr.Error())
	case errors.Is(err, domain.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, "not found")
	case errors.Is(err, domain.ErrConflict):
		writeError(w, http.StatusConflict, codeConflict, "already exists")
	case outage(err):
		writeUnavailable(w)
	default:
		writeError(w, http.StatusInternalServerError, codeInternal, "internal error")
	}
}

// unavailableRetryAfter is the Retry-After of a 503: the database, Redis
// or the event log did not answer (as long as the webhook receiver
// suggests).
const unavailableRetryAfter = 5 * time.Second

// writeUnavailable answers 503 UNAVAILABLE: try again later.
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", retryAfterSeconds(unavailableRetryAfter))
	writeError(w, http.StatusServiceUnavailable, codeUnavailable, "try again later")
}

// outage reports whether err says a service the request needs (Postgres,
// Redis, the broker) could not do the work, rather than that the request
// or this service is wrong: no connection, a connection lost or timed
// out, or Postgres refusing for a reason of its own (SQLSTATE classes 08
// connection, 53 resources, 57 operator intervention, 58 system, and
// 25006, a database that takes no writes). Trying again later may work.
func outage(err error) bool {
	if errors.Is(err, projections.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		state := pgErr.SQLState()
		for _, class := range []string{"08", "53", "57", "58"} {
			if strings.HasPrefix(state, class) {
				return true
			}
		}
		return state == "25006"
	}
	return false
}

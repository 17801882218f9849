package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
	"github.com/roisystems/softprohub/projections"
)

// ProjectionsStatusSource reports every projection.
type ProjectionsStatusSource interface {
	Status(ctx context.Context) (projections.StatusReport, error)
}

// RebuildStarter starts rebuilds (projections.Rebuilder): a start that is
// refused (another rebuild running, a schema a build may not write into)
// returns the error; one that is admitted is executed in the background.
// Projections names the projections a rebuild replaces.
type RebuildStarter interface {
	StartRebuild(ctx context.Context) (*projections.StartedRebuild, error)
	StartAsOf(ctx context.Context, t time.Time, schema string, replace bool) (*projections.StartedRebuild, error)
	Projections() []string
}

// WindowReplayer replays windows of the log (projections.Replayer).
type WindowReplayer interface {
	Replay(ctx context.Context, req projections.ReplayRequest) (projections.ReplayReport, error)
}

// GapsRecovery finds and fills gaps, validates and resyncs
// (projections.Recovery).
type GapsRecovery interface {
	Gaps(ctx context.Context, integrationID string) (projections.GapReport, error)
	Fill(ctx context.Context, integrationID, correlationID string) (projections.FillReport, error)
	Validate(ctx context.Context, integrationID string) (projections.ConsistencyReport, error)
	Resync(ctx context.Context, integrationID string) (projections.ResyncReport, error)
}

// RecoveryDeps are the recovery endpoints' collaborators, all required but
// Logger.
type RecoveryDeps struct {
	Status    ProjectionsStatusSource
	Rebuilder RebuildStarter
	Replayer  WindowReplayer
	Recovery  GapsRecovery
	// Integrations finds the integration of a route's path: an unknown one
	// is 404 on every route of one integration.
	Integrations IntegrationLookup
	// Go runs a rebuild in the background under the process's lifetime.
	Go     func(fn func(ctx context.Context))
	Logger *slog.Logger
}

// RecoveryRoutes mounts the admin endpoints of replay and recovery:
// projections status, rebuild, replay, gaps, gap filling, consistency and
// resync.
func RecoveryRoutes(d RecoveryDeps) func(r chi.Router) {
	if d.Status == nil || d.Rebuilder == nil || d.Replayer == nil || d.Recovery == nil || d.Integrations == nil || d.Go == nil {
		panic("httpapi.RecoveryRoutes: every dependency is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	api := &recoveryAPI{d}
	return func(r chi.Router) {
		const base = "/integrations/softpro"
		r.Group(func(r chi.Router) {
			r.Use(requireRole(RoleAdmin), textPathIDs)
			r.Get(base+"/projections", api.status)
			r.Post(base+"/projections/rebuild", api.rebuild)
			r.Group(func(r chi.Router) {
				r.Use(api.knownIntegration)
				r.Post(base+"/{integrationId}/replay", api.replay)
				r.Get(base+"/{integrationId}/gaps", api.gaps)
				r.Post(base+"/{integrationId}/gaps/fill", api.fill)
				r.Get(base+"/{integrationId}/consistency", api.consistency)
				r.Post(base+"/{integrationId}/resync", api.resync)
			})
		})
	}
}

type recoveryAPI struct{ d RecoveryDeps }

func (a *recoveryAPI) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	// A resync starts a sync: its refusals answer as the sync routes'.
	if writeSyncRefusal(w, err) {
		return
	}
	switch {
	case errors.Is(err, projections.ErrRebuildRunning), errors.Is(err, projections.ErrTargetExists),
		errors.Is(err, projections.ErrTargetBusy):
		writeError(w, http.StatusConflict, codeConflict, err.Error())
	case errors.Is(err, projections.ErrNoSync):
		writeError(w, http.StatusConflict, codeNoConnection, err.Error())
	case errors.Is(err, domain.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
	case errors.Is(err, projections.ErrInvalidTarget), errors.Is(err, projections.ErrEmptyWindow),
		errors.Is(err, projections.ErrAsOfInFuture):
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
	case upstreamFailed(err):
		// The SoftPro API failed the resync's sync run (its record says
		// more): the service is not at fault, the API it depends on is.
		writeError(w, http.StatusBadGateway, codeBadGateway, err.Error())
	case outage(err):
		a.d.Logger.Warn(op+" unavailable", "path", r.URL.Path, "err", err)
		writeUnavailable(w)
	default:
		if !errors.Is(r.Context().Err(), context.Canceled) { // not when the client went away
			a.d.Logger.Error(op+" failed", "path", r.URL.Path, "err", err)
		}
		writeError(w, http.StatusInternalServerError, codeInternal, op+" failed")
	}
}

// upstreamFailed reports whether err is the SoftPro API's failure: an
// error answer, no answer, a rate limit waited out, a refused token.
func upstreamFailed(err error) bool {
	var api *ingest.APIError
	var limited *ingest.RateLimitedError
	return errors.As(err, &api) || errors.As(err, &limited) || errors.Is(err, ingest.ErrTokenRefused)
}

// knownIntegration answers 404 when the integration of the path does not
// exist, before the route's work: a replay or a validation of an unknown
// integration would otherwise find nothing and report success.
func (a *recoveryAPI) knownIntegration(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.d.Integrations.Integration(r.Context(), pathParam(r, "integrationId")); err != nil {
			a.fail(w, r, "integration lookup", err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *recoveryAPI) status(w http.ResponseWriter, r *http.Request) {
	rep, err := a.d.Status.Status(r.Context())
	if err != nil {
		a.fail(w, r, "projections status", err)
		return
	}
	writeData(w, http.StatusOK, rep)
}

// rebuild starts a rebuild (or, with asOf and schema, a point-in-time
// build) in the background and answers 202; progress shows in the status.
func (a *recoveryAPI) rebuild(w http.ResponseWriter, r *http.Request) {
	var body struct {
		// Projection is "all" or one projection's name, as the CLI's
		// --projection: every projection writes the same tables, so either
		// rebuilds all of them.
		Projection string          `json:"projection"`
		AsOf       present[string] `json:"asOf"`
		Schema     present[string] `json:"schema"`
		Replace    present[bool]   `json:"replace"`
	}
	if err := decodeOptionalBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if names := a.d.Rebuilder.Projections(); body.Projection != "" && body.Projection != "all" && !slices.Contains(names, body.Projection) {
		slices.Sort(names)
		writeError(w, http.StatusBadRequest, codeBadRequest,
			fmt.Sprintf("unknown projection %q: all, or one of %s", body.Projection, strings.Join(names, ", ")))
		return
	}
	// A body meant for a point-in-time build must never start a live
	// rebuild: any of asOf, schema and replace, even empty, false or null,
	// makes it one, which then needs asOf and schema.
	copying := body.AsOf.set || body.Schema.set || body.Replace.set
	if copying && body.AsOf.v == "" {
		writeError(w, http.StatusBadRequest, codeBadRequest,
			"schema and replace are for a point-in-time build and need asOf; a rebuild without any of asOf, schema and replace builds its own schema and swaps it in")
		return
	}
	var asOf time.Time
	if copying {
		t, err := time.Parse(time.RFC3339, body.AsOf.v)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, "asOf must be RFC 3339")
			return
		}
		if t.IsZero() {
			writeError(w, http.StatusBadRequest, codeBadRequest, "asOf must be later than 0001-01-01T00:00:00Z")
			return
		}
		if body.Schema.v == "" {
			writeError(w, http.StatusBadRequest, codeBadRequest, "schema is required with asOf")
			return
		}
		asOf = t
	}
	// The start is decided here, so that a refusal is the answer: another
	// rebuild holding the lock (409), a schema no build may write into
	// (400) or one that exists without replace (409).
	var start *projections.StartedRebuild
	var err error
	if copying {
		start, err = a.d.Rebuilder.StartAsOf(r.Context(), asOf, body.Schema.v, body.Replace.v)
	} else {
		start, err = a.d.Rebuilder.StartRebuild(r.Context())
	}
	if err != nil {
		a.fail(w, r, "rebuild", err)
		return
	}
	log := a.d.Logger
	a.d.Go(func(ctx context.Context) {
		run, err := start.Execute(ctx)
		if err != nil {
			log.Error("rebuild failed", "kind", run.Kind, "schema", run.Schema, "err", err)
			return
		}
		log.Info("rebuild done", "kind", run.Kind, "schema", run.Schema, "applied", run.Progress.Applied,
			"eventsPerSecond", int(run.Progress.Rate), "paused", run.Paused)
	})
	run := start.Run()
	writeData(w, http.StatusAccepted, map[string]any{"started": true, "runId": run.ID, "asOf": body.AsOf.v, "schema": body.Schema.v})
}

func (a *recoveryAPI) replay(w http.ResponseWriter, r *http.Request) {
	var body struct {
		From  string   `json:"from"`
		To    string   `json:"to"`
		Types []string `json:"types"`
	}
	if err := decodeOptionalBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	req := projections.ReplayRequest{IntegrationID: pathParam(r, "integrationId")}
	for name, v := range map[string]struct {
		s   string
		dst *time.Time
	}{"from": {body.From, &req.From}, "to": {body.To, &req.To}} {
		if v.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v.s)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadRequest, name+" must be RFC 3339")
			return
		}
		*v.dst = t
	}
	for _, t := range body.Types {
		req.Types = append(req.Types, domain.EventType(strings.TrimSpace(t)))
	}
	rep, err := a.d.Replayer.Replay(r.Context(), req)
	if err != nil {
		a.fail(w, r, "replay", err)
		return
	}
	writeData(w, http.StatusOK, rep)
}

// gaps answers 200 with what it found, also when the SoftPro API does not
// answer: the report then names the data side in notChecked, with why.
func (a *recoveryAPI) gaps(w http.ResponseWriter, r *http.Request) {
	rep, err := a.d.Recovery.Gaps(r.Context(), pathParam(r, "integrationId"))
	if err != nil {
		a.fail(w, r, "gaps", err)
		return
	}
	writeData(w, http.StatusOK, rep)
}

// fill and resync take no body: one naming a field is refused, not
// ignored. A fill that ran answers 200 with its report, partial or not
// (its partial, errors and notChecked say what it left).
func (a *recoveryAPI) fill(w http.ResponseWriter, r *http.Request) {
	if err := decodeNoBody(r); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	rep, err := a.d.Recovery.Fill(r.Context(), pathParam(r, "integrationId"), middleware.GetReqID(r.Context()))
	if err != nil {
		a.fail(w, r, "gaps fill", err)
		return
	}
	writeData(w, http.StatusOK, rep)
}

func (a *recoveryAPI) consistency(w http.ResponseWriter, r *http.Request) {
	rep, err := a.d.Recovery.Validate(r.Context(), pathParam(r, "integrationId"))
	if err != nil {
		a.fail(w, r, "consistency", err)
		return
	}
	writeData(w, http.StatusOK, rep)
}

func (a *recoveryAPI) resync(w http.ResponseWriter, r *http.Request) {
	if err := decodeNoBody(r); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	rep, err := a.d.Recovery.Resync(r.Context(), pathParam(r, "integrationId"))
	if err != nil {
		a.fail(w, r, "resync", err)
		return
	}
	writeData(w, http.StatusOK, rep)
}

package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/schedule"
	"github.com/roisystems/softprohub/ingest"
)

// SyncStarter starts sync runs (ingest.Syncer).
type SyncStarter interface {
	Start(ctx context.Context, req ingest.SyncRequest) (*ingest.StartedSync, error)
}

// SyncStatusSource answers the scheduler status (schedule.StatusReader).
type SyncStatusSource interface {
	Status(ctx context.Context) ([]schedule.IntegrationStatus, error)
}

// SyncRunLister lists an integration's runs, newest first.
type SyncRunLister interface {
	Runs(ctx context.Context, integrationID string, limit int) ([]ingest.SyncRun, error)
}

// ConnectionStore keeps SoftPro API connections.
type ConnectionStore interface {
	SetConnection(ctx context.Context, c domain.SoftProConnection) error
	Connection(ctx context.Context, integrationID string) (domain.SoftProConnection, error)
}

// SyncDeps are the sync endpoints' collaborators, all required but Logger.
type SyncDeps struct {
	Starter     SyncStarter
	Status      SyncStatusSource
	Runs        SyncRunLister
	Connections ConnectionStore
	// Go runs a started sync in the background under the process's
	// lifetime (cancelled at shutdown).
	Go func(fn func(ctx context.Context))
	// DefaultBaseURL (SOFTPRO_API_URL) serves connections that leave their
	// base URL empty.
	DefaultBaseURL string
	Logger         *slog.Logger
}

// Sync error codes.
const (
	codeSyncInProgress = "SYNC_IN_PROGRESS"
	codeSyncDisabled   = "SYNC_DISABLED"
	codeNoConnection   = "NO_CONNECTION"
)

// SyncRoutes mounts the admin sync endpoints: run now, scheduler status,
// run history and the SoftPro API connection of an integration.
func SyncRoutes(d SyncDeps) func(r chi.Router) {
	if d.Starter == nil || d.Status == nil || d.Runs == nil || d.Connections == nil || d.Go == nil {
		panic("httpapi.SyncRoutes: every dependency is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	api := &syncAPI{d}
	return func(r chi.Router) {
		const base = "/integrations/softpro"
		r.Group(func(r chi.Router) {
			r.Use(requireRole(RoleAdmin), textPathIDs)
			r.Post(base+"/{integrationId}/sync", api.run)
			r.Get(base+"/sync/status", api.status)
			r.Get(base+"/{integrationId}/sync/runs", api.runs)
			r.Put(base+"/{integrationId}/sync/connection", api.putConnection)
			r.Get(base+"/{integrationId}/sync/connection", api.getConnection)
		})
	}
}

type syncAPI struct{ d SyncDeps }

// writeSyncRefusal answers a sync start refused for a reason the caller
// can act on (a run already going, the integration inactive, no
// connection) with 409 and its code, and reports whether err was one.
func writeSyncRefusal(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, ingest.ErrSyncInProgress):
		writeError(w, http.StatusConflict, codeSyncInProgress, "a sync of this integration is already running")
	case errors.Is(err, ingest.ErrSyncDisabled):
		writeError(w, http.StatusConflict, codeSyncDisabled, "integration is inactive")
	case errors.Is(err, ingest.ErrNoConnection):
		writeError(w, http.StatusConflict, codeNoConnection, "no SoftPro API connection configured: PUT …/sync/connection first")
	default:
		return false
	}
	return true
}

func (a *syncAPI) writeSyncError(w http.ResponseWriter, r *http.Request, err error) {
	if writeSyncRefusal(w, err) {
		return
	}
	var verr *domain.ValidationError
	if !errors.As(err, &verr) && !errors.Is(err, domain.ErrNotFound) {
		a.d.Logger.ErrorContext(r.Context(), "sync", "err", err)
	}
	writeDomainError(w, err)
}

// run is POST /integrations/softpro/{id}/sync: body {"types": [...]}
// optional; ?wait=true answers when the run has finished (200), otherwise
// as soon as it holds the lock (202).
func (a *syncAPI) run(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	wait := p.boolean("wait")
	if p.err != nil {
		writeQueryError(w, p.err)
		return
	}
	var body struct {
		Types []string `json:"types"`
	}
	if err := decodeOptionalBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if v := r.URL.Query().Get("types"); v != "" && len(body.Types) == 0 {
		body.Types = strings.Split(v, ",")
	}
	st, err := a.d.Starter.Start(r.Context(), ingest.SyncRequest{IntegrationID: pathParam(r, "integrationId"),
		Types: body.Types, Trigger: ingest.TriggerManual})
	if err != nil {
		a.writeSyncError(w, r, err)
		return
	}
	// The run belongs to the service, not to the request: a client that
	// stops waiting (a proxy's timeout) does not end it.
	finished := make(chan ingest.SyncRun, 1)
	a.d.Go(func(ctx context.Context) {
		run, err := st.Execute(ctx)
		if err != nil {
			a.d.Logger.Warn("manual sync failed", "integration", run.IntegrationID, "run", run.ID, "err", err)
		}
		finished <- run
	})
	if wait {
		select {
		case run := <-finished:
			writeData(w, http.StatusOK, map[string]any{"run": run})
		case <-r.Context().Done():
		}
		return
	}
	writeData(w, http.StatusAccepted, map[string]any{"run": st.Run()})
}

func (a *syncAPI) status(w http.ResponseWriter, r *http.Request) {
	st, err := a.d.Status.Status(r.Context())
	if err != nil {
		a.writeSyncError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{"integrations": st, "timestamp": time.Now().UTC()})
}

func (a *syncAPI) runs(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, codeBadRequest, "limit must be 1..500")
			return
		}
		limit = n
	}
	runs, err := a.d.Runs.Runs(r.Context(), pathParam(r, "integrationId"), limit)
	if err != nil {
		a.writeSyncError(w, r, err)
		return
	}
	if runs == nil {
		runs = []ingest.SyncRun{}
	}
	writeData(w, http.StatusOK, map[string]any{"runs": runs})
}

// connectionView never shows a credential.
type connectionView struct {
	IntegrationID string    `json:"integrationId"`
	BaseURL       string    `json:"baseUrl"`
	Auth          string    `json:"auth"`
	APIKey        string    `json:"apiKey,omitempty"`
	ClientID      string    `json:"clientId,omitempty"`
	ClientSecret  string    `json:"clientSecret,omitempty"`
	TokenURL      string    `json:"tokenUrl,omitempty"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

func viewConnection(c domain.SoftProConnection) connectionView {
	v := connectionView{IntegrationID: c.IntegrationID, BaseURL: c.BaseURL, Auth: string(c.Auth),
		ClientID: c.ClientID, TokenURL: c.TokenURL, UpdatedAt: c.UpdatedAt}
	if c.APIKey != "" {
		v.APIKey = masked
	}
	if c.ClientSecret != "" {
		v.ClientSecret = masked
	}
	return v
}

// connectionRequest is the body of PUT …/sync/connection: what a client
// sets. The integration comes from the path and updatedAt from the
// store, so naming either (as the view shows them) is refused as unknown.
type connectionRequest struct {
	BaseURL      string `json:"baseUrl"`
	Auth         string `json:"auth"`
	APIKey       string `json:"apiKey"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	TokenURL     string `json:"tokenUrl"`
}

func (a *syncAPI) putConnection(w http.ResponseWriter, r *http.Request) {
	var body connectionRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	id := pathParam(r, "integrationId")
	c := domain.SoftProConnection{IntegrationID: id, BaseURL: body.BaseURL, Auth: domain.SoftProAuth(body.Auth),
		APIKey: body.APIKey, ClientID: body.ClientID, ClientSecret: body.ClientSecret, TokenURL: body.TokenURL}
	if c.Auth == "" {
		c.Auth = domain.AuthAPIKey
	}
	// Credentials may be left out to keep the stored ones; "***", how
	// they are shown, is refused rather than stored in their place.
	if err := ingest.CheckConnection(r.Context(), a.d.Connections, c, a.d.DefaultBaseURL); err != nil {
		var invalid *domain.ValidationError
		if errors.As(err, &invalid) {
			writeDomainError(w, err)
		} else {
			a.writeSyncError(w, r, err)
		}
		return
	}
	if err := a.d.Connections.SetConnection(r.Context(), c); err != nil {
		a.writeSyncError(w, r, err)
		return
	}
	a.getConnection(w, r)
}

func (a *syncAPI) getConnection(w http.ResponseWriter, r *http.Request) {
	c, err := a.d.Connections.Connection(r.Context(), pathParam(r, "integrationId"))
	if err != nil {
		a.writeSyncError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{"connection": viewConnection(c)})
}

package httpapi

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/roisystems/softprohub/projections"
)

// IntegrationMonitor answers one integration's health and metrics
// (projections.Monitor); an unknown integration is an error wrapping
// domain.ErrNotFound.
type IntegrationMonitor interface {
	Health(ctx context.Context, integrationID string) (projections.HealthReport, error)
	Metrics(ctx context.Context, integrationID string) (projections.IntegrationMetrics, error)
}

// MonitorRoutes mounts the health and metrics of one integration, for
// analysts and admins.
func MonitorRoutes(m IntegrationMonitor) func(r chi.Router) {
	if m == nil {
		panic("httpapi.MonitorRoutes: nil monitor")
	}
	return func(r chi.Router) {
		const base = "/integrations/softpro"
		r.Group(func(r chi.Router) {
			r.Use(requireRole(RoleAdmin, RoleAnalyst), textPathIDs)
			r.Get(base+"/{integrationId}/health", func(w http.ResponseWriter, r *http.Request) {
				rep, err := m.Health(r.Context(), pathParam(r, "integrationId"))
				writeMonitored(w, rep, err)
			})
			r.Get(base+"/{integrationId}/metrics", func(w http.ResponseWriter, r *http.Request) {
				rep, err := m.Metrics(r.Context(), pathParam(r, "integrationId"))
				writeMonitored(w, rep, err)
			})
		})
	}
}

func writeMonitored(w http.ResponseWriter, data any, err error) {
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeData(w, http.StatusOK, data)
}

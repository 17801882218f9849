package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

type checkResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Critical bool   `json:"critical"`
	Error    string `json:"error,omitempty"`
}

// runChecks probes every dependency concurrently, each bounded by timeout.
func (s *server) runChecks(ctx context.Context, timeout time.Duration) (results []checkResult, ready, degraded bool) {
	results = make([]checkResult, len(s.checks))
	var wg sync.WaitGroup
	for i, c := range s.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			res := checkResult{Name: c.Name, OK: true, Critical: c.Critical}
			if err := c.Probe(cctx); err != nil {
				res.OK, res.Error = false, err.Error()
			}
			results[i] = res
		}()
	}
	wg.Wait()
	ready = true
	for _, r := range results {
		if !r.OK && r.Critical {
			ready = false
		}
		if !r.OK && !r.Critical {
			degraded = true
		}
	}
	return results, ready, degraded
}

// healthz answers 200 while the process serves HTTP.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeData(w, http.StatusOK, map[string]string{"status": "up"})
}

// readyz answers 200 when every critical dependency (broker, Postgres)
// answers, 503 otherwise; Redis only degrades.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	results, ready, _ := s.runChecks(r.Context(), 2*time.Second)
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, envelope{Success: ready, Data: map[string]any{"ready": ready, "checks": results}})
}

// health is the original GET /api/webhooks/health.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	results, ready, degraded := s.runChecks(r.Context(), 2*time.Second)
	status := "healthy"
	switch {
	case !ready:
		status = "unhealthy"
	case degraded:
		status = "degraded"
	}
	queues := []QueueStat{}
	if s.queues != nil && ready {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		if q, err := s.queues.Queues(ctx); err == nil {
			queues = q
		}
		cancel()
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, envelope{Success: ready, Data: map[string]any{
		"status":    status,
		"service":   "softpro-webhook",
		"timestamp": s.cfg.Now().UTC().Format(time.RFC3339),
		"queues":    queues,
		"checks":    results,
	}})
}

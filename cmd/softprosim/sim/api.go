package sim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Handler serves the SoftPro API of every tenant under /t/{tenant} and the
// simulator's own control endpoints under /_sim.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/{tenant}/v1/{type}", s.list)
	mux.HandleFunc("POST /t/{tenant}/oauth/token", s.token)
	mux.HandleFunc("GET /_sim/tenants", s.listTenants)
	mux.HandleFunc("GET /_sim/stats", s.stats)
	mux.HandleFunc("PUT /_sim/faults", s.putFaults)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// authorize checks the API key or bearer token against the tenant.
func (s *Sim) authorize(r *http.Request, t *Tenant) bool {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k == t.APIKey
	}
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return s.tokens[b] == t.ID
	}
	return false
}

// cursor is the (updated_at, id) of the last record of a page.
func encodeCursor(r *Record) string {
	return base64.RawURLEncoding.EncodeToString([]byte(r.UpdatedAt.UTC().Format(time.RFC3339Nano) + "|" + r.ID))
}

func decodeCursor(c string) (time.Time, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", false
	}
	ts, id, ok := strings.Cut(string(b), "|")
	at, err := time.Parse(time.RFC3339Nano, ts)
	return at, id, ok && err == nil
}

func (s *Sim) list(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	s.mu.Lock()
	t, ok := s.tenants[r.PathValue("tenant")]
	if !ok {
		s.mu.Unlock()
		apiError(w, http.StatusNotFound, "not_found", "no such tenant")
		return
	}
	if !s.authorize(r, t) {
		t.stats.Unauthorized++
		s.mu.Unlock()
		apiError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API key or token")
		return
	}
	now := s.now()
	t.arrivals = append(t.arrivals, now)
	t.stats.Requests++
	f := s.cfg.Faults
	// Quota first, as SoftPro would count it: a sliding window log.
	if s.cfg.RateLimit > 0 {
		cut := 0
		for cut < len(t.window) && now.Sub(t.window[cut]) >= s.cfg.RateWindow {
			cut++
		}
		t.window = t.window[cut:]
		if len(t.window) >= s.cfg.RateLimit {
			wait := s.cfg.RateWindow - now.Sub(t.window[0])
			t.stats.QuotaExceeded++
			s.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			apiError(w, http.StatusTooManyRequests, "rate_limited", "quota exceeded")
			return
		}
		t.window = append(t.window, now)
	}
	roll := s.rng.Float64()
	switch {
	case roll < f.RateLimited:
		t.stats.Injected429++
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		apiError(w, http.StatusTooManyRequests, "rate_limited", "injected 429")
		return
	case roll < f.RateLimited+f.ServerErrors:
		t.stats.Injected5xx++
		status := pick(s.rng, []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable})
		s.mu.Unlock()
		apiError(w, status, "server_error", "injected failure")
		return
	}
	broken := roll < f.RateLimited+f.ServerErrors+f.Malformed
	slow := s.rng.Float64() < f.Slow
	body, status, msg := s.page(t, typ, r, f.Edges)
	if broken && status == http.StatusOK {
		t.stats.InjectedBroken++
		body = body[:len(body)/2]
	}
	s.mu.Unlock()
	if slow && f.SlowDelay > 0 {
		select {
		case <-time.After(f.SlowDelay):
		case <-r.Context().Done():
			return
		}
	}
	if status != http.StatusOK {
		apiError(w, status, "bad_request", msg)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// page renders one page; s.mu is held.
func (s *Sim) page(t *Tenant, typ string, r *http.Request, edges bool) ([]byte, int, string) {
	list, ok := t.list[typ]
	if !ok && !slices.Contains(domain.SyncTypes, typ) {
		return nil, http.StatusNotFound, "unknown record type " + typ
	}
	q := r.URL.Query()
	limit := s.cfg.DefaultPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, http.StatusBadRequest, "limit must be a positive integer"
		}
		limit = min(n, s.cfg.MaxPage)
	}
	start := 0
	if v := q.Get("modified_since"); v != "" {
		since, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, http.StatusBadRequest, "modified_since must be RFC 3339"
		}
		start = sort.Search(len(list), func(i int) bool { return !list[i].UpdatedAt.Before(since) })
	}
	if c := q.Get("cursor"); c != "" {
		at, id, ok := decodeCursor(c)
		if !ok {
			return nil, http.StatusBadRequest, "malformed cursor"
		}
		key := &Record{UpdatedAt: at, ID: id}
		start = max(start, sort.Search(len(list), func(i int) bool { return key.less(list[i]) }))
	}
	if c := q.Get("cursor"); c != "" && s.cfg.Faults.Stuck {
		b, _ := json.Marshal(map[string]any{"data": []any{}, "next_cursor": c, "has_more": true})
		return b, http.StatusOK, ""
	}
	n := limit
	if edges {
		switch s.rng.IntN(6) {
		case 0: // an empty page that still has a cursor
			n = 0
		case 1: // a short page
			n = max(1, limit/3)
		case 2: // repeat the previous page's last record
			if start > 0 {
				start--
			}
		}
	}
	end := min(start+n, len(list))
	out := struct {
		Data       []json.RawMessage `json:"data"`
		NextCursor *string           `json:"next_cursor"`
		HasMore    bool              `json:"has_more"`
	}{Data: make([]json.RawMessage, 0, end-start)}
	for _, rec := range list[start:end] {
		out.Data = append(out.Data, rec.raw)
	}
	t.stats.RecordsServed += end - start
	more := end < len(list)
	// With edge cases a full last page is followed by an empty one.
	if more || (edges && n > 0 && end-start == n) || (edges && n == 0) {
		var c string
		switch {
		case end > start:
			c = encodeCursor(list[end-1])
		case q.Get("cursor") != "":
			c = q.Get("cursor")
		case start > 0:
			c = encodeCursor(list[start-1])
		default:
			c = base64.RawURLEncoding.EncodeToString([]byte(time.Time{}.Format(time.RFC3339Nano) + "|"))
		}
		out.NextCursor, out.HasMore = &c, true
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, http.StatusInternalServerError, err.Error()
	}
	return b, http.StatusOK, ""
}

// token is the OAuth 2.0 client credentials grant.
func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[r.PathValue("tenant")]
	if !ok || r.PostForm.Get("grant_type") != "client_credentials" || id != t.ClientID || secret != t.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "at_" + hex.EncodeToString(b[:])
	s.tokens[tok] = t.ID
	t.stats.TokensIssued++
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

func (s *Sim) listTenants(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := "http://" + r.Host
	out := make([]map[string]any, 0, len(s.cfg.Tenants))
	for _, id := range s.cfg.Tenants {
		t := s.tenants[id]
		counts := map[string]int{}
		for typ, l := range t.list {
			counts[typ] = len(l)
		}
		out = append(out, map[string]any{"id": id, "baseUrl": base + "/t/" + id, "apiKey": t.APIKey,
			"clientId": t.ClientID, "clientSecret": t.ClientSecret, "records": counts})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

func (s *Sim) stats(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := map[string]Stats{}
	for id, t := range s.tenants {
		out[id] = t.stats
	}
	window := s.cfg.RateWindow
	s.mu.Unlock()
	maxes := map[string]int{}
	for id := range out {
		maxes[id] = s.MaxInWindow(id, window)
	}
	writeJSON(w, http.StatusOK, map[string]any{"stats": out, "maxInWindow": maxes, "window": window.String()})
}

// faultsBody is Faults with durations as strings ("2s").
type faultsBody struct {
	RateLimited  float64 `json:"rateLimited"`
	RetryAfter   string  `json:"retryAfter"`
	ServerErrors float64 `json:"serverErrors"`
	Malformed    float64 `json:"malformed"`
	Stuck        bool    `json:"stuck"`
	Slow         float64 `json:"slow"`
	SlowDelay    string  `json:"slowDelay"`
	Edges        bool    `json:"edges"`
}

func (s *Sim) putFaults(w http.ResponseWriter, r *http.Request) {
	var b faultsBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	f := Faults{RateLimited: b.RateLimited, ServerErrors: b.ServerErrors, Malformed: b.Malformed, Stuck: b.Stuck, Slow: b.Slow, Edges: b.Edges}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{b.RetryAfter, &f.RetryAfter}, {b.SlowDelay, &f.SlowDelay}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("duration %q: %v", d.s, err))
			return
		}
		*d.dst = v
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, map[string]any{"faults": b})
}

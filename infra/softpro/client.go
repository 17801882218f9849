// Package softpro is the HTTP client of the SoftPro 360 API as softprohub
// assumes it (docs/softpro-api.md): paginated list endpoints per record
// type with modified_since and an opaque cursor, API key or OAuth client
// credentials, and 429 with Retry-After. It satisfies ingest.SoftProAPI; a
// different real contract replaces this package alone.
package softpro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

var _ ingest.SoftProAPI = (*Client)(nil)

// Config configures the client.
type Config struct {
	// HTTPClient defaults to one with a 30 s timeout that follows
	// redirects only within the origin asked (sameOrigin).
	HTTPClient *http.Client
	// MaxBody bounds a page's body; default 64 MiB.
	MaxBody int64
	// UserAgent defaults to "softprohub-sync".
	UserAgent string
}

// Client lists records over HTTP. OAuth tokens are cached per connection
// until shortly before they expire. It is safe for concurrent use.
type Client struct {
	cfg    Config
	mu     sync.Mutex
	tokens map[string]token // by token URL + client id
}

type token struct {
	value   string
	expires time.Time
}

// New returns a client.
func New(cfg Config) *Client {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, CheckRedirect: sameOrigin}
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 64 << 20
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "softprohub-sync"
	}
	return &Client{cfg: cfg, tokens: map[string]token{}}
}

// listBody is a list endpoint's answer.
type listBody struct {
	Data       []json.RawMessage `json:"data"`
	NextCursor *string           `json:"next_cursor"`
}

// recordHead is what the client reads of each record.
type recordHead struct {
	ID        json.RawMessage `json:"id"`
	UpdatedAt string          `json:"updated_at"`
}

// List fetches one page: GET {base}/v1/{type}?limit=&modified_since=&cursor=.
func (c *Client) List(ctx context.Context, conn domain.SoftProConnection, req ingest.PageRequest) (ingest.Page, error) {
	u, err := url.Parse(strings.TrimRight(conn.BaseURL, "/") + "/v1/" + url.PathEscape(req.Type))
	if err != nil {
		return ingest.Page{}, &ingest.APIError{Msg: "base url: " + err.Error()}
	}
	q := u.Query()
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	if !req.ModifiedSince.IsZero() {
		q.Set("modified_since", req.ModifiedSince.UTC().Format(time.RFC3339Nano))
	}
	if req.Cursor != "" {
		q.Set("cursor", req.Cursor)
	}
	u.RawQuery = q.Encode()

	body, err := c.get(ctx, conn, u.String())
	if err != nil {
		return ingest.Page{}, err
	}
	var lb listBody
	if err := json.Unmarshal(body, &lb); err != nil {
		// A body that is not the page's JSON (cut off, or a proxy's error
		// page) is no answer: status 0, retried like one.
		return ingest.Page{}, &ingest.APIError{Msg: "decode page: " + err.Error()}
	}
	page := ingest.Page{Records: make([]ingest.Record, 0, len(lb.Data))}
	if lb.NextCursor != nil {
		page.NextCursor = *lb.NextCursor
	}
	for i, raw := range lb.Data {
		var h recordHead
		if err := json.Unmarshal(raw, &h); err != nil {
			return ingest.Page{}, &ingest.APIError{Status: http.StatusOK, Msg: fmt.Sprintf("record %d: %v", i, err)}
		}
		id := idText(h.ID)
		at, err := time.Parse(time.RFC3339Nano, h.UpdatedAt)
		if id == "" || err != nil {
			return ingest.Page{}, &ingest.APIError{Status: http.StatusOK,
				Msg: fmt.Sprintf("record %d: id and RFC 3339 updated_at are required", i)}
		}
		page.Records = append(page.Records, ingest.Record{ID: id, UpdatedAt: at.UTC(), Raw: raw})
	}
	return page, nil
}

func idText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// get performs an authenticated GET; with OAuth a 401 forgets the token
// and answers ingest.ErrTokenRefused.
func (c *Client) get(ctx context.Context, conn domain.SoftProConnection, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &ingest.APIError{Msg: err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	switch conn.Auth {
	case domain.AuthOAuth:
		tok, err := c.token(ctx, conn)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	default:
		req.Header.Set("X-API-Key", conn.APIKey)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, &ingest.APIError{Msg: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody+1))
	if err != nil {
		return nil, &ingest.APIError{Msg: "read body: " + err.Error()}
	}
	if int64(len(body)) > c.cfg.MaxBody {
		return nil, &ingest.APIError{Status: resp.StatusCode, Msg: "body larger than the client's limit"}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, &ingest.RateLimitedError{RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case resp.StatusCode == http.StatusUnauthorized && conn.Auth == domain.AuthOAuth:
		c.forget(conn)
		return nil, ingest.ErrTokenRefused
	default:
		return nil, &ingest.APIError{Status: resp.StatusCode, Msg: snippet(body)}
	}
}

// retryAfter reads Retry-After as seconds or an HTTP date; missing or
// unreadable means one second.
// maxRetryAfter bounds the waits read from Retry-After.
const maxRetryAfter = 365 * 24 * time.Hour

func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return time.Second
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		// Read as at most a year: larger numbers would overflow a Duration.
		return time.Duration(min(n, maxRetryAfter.Seconds()) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return time.Second
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func tokenURL(conn domain.SoftProConnection) string {
	if conn.TokenURL != "" {
		return conn.TokenURL
	}
	return strings.TrimRight(conn.BaseURL, "/") + "/oauth/token"
}

func (c *Client) forget(conn domain.SoftProConnection) {
	c.mu.Lock()
	delete(c.tokens, tokenURL(conn)+"\x00"+conn.ClientID)
	c.mu.Unlock()
}

// token returns a cached bearer token or fetches one with the client
// credentials grant.
func (c *Client) token(ctx context.Context, conn domain.SoftProConnection) (string, error) {
	key := tokenURL(conn) + "\x00" + conn.ClientID
	c.mu.Lock()
	t, ok := c.tokens[key]
	c.mu.Unlock()
	if ok && time.Now().Before(t.expires) {
		return t.value, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {conn.ClientID}, "client_secret": {conn.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL(conn), bytes.NewBufferString(form.Encode()))
	if err != nil {
		return "", &ingest.APIError{Msg: "token request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", &ingest.APIError{Msg: "token request: " + err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusTooManyRequests {
		return "", &ingest.RateLimitedError{RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	if resp.StatusCode != http.StatusOK {
		return "", &ingest.APIError{Status: resp.StatusCode, Msg: "token: " + snippet(body)}
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", &ingest.APIError{Status: resp.StatusCode, Msg: "token: no access_token in answer"}
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	// Renew a little early so a token does not expire mid-request.
	c.mu.Lock()
	c.tokens[key] = token{value: tr.AccessToken, expires: time.Now().Add(life * 9 / 10)}
	c.mu.Unlock()
	return tr.AccessToken, nil
}

// sameOrigin follows a redirect only to the scheme, host and port of the
// request it answers: the API key header and the token request's client
// secret would go wherever it points (Go drops only Authorization and
// cookies on a redirect to another host, and keeps them on a downgrade to
// http).
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	from := via[0].URL
	if req.URL.Scheme != from.Scheme || !strings.EqualFold(req.URL.Host, from.Host) {
		return fmt.Errorf("redirect from %s://%s to %s://%s refused: the credentials are not sent to another origin",
			from.Scheme, from.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

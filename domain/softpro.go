package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// SyncEventType is the event type of a record of sync type t pulled from
// the SoftPro API ("transactions" → transaction.synced); ok is false for an
// unknown sync type.
func SyncEventType(t string) (EventType, bool) {
	switch t {
	case SyncTransactions:
		return TransactionSynced, true
	case SyncContacts:
		return ContactSynced, true
	case SyncDocuments:
		return DocumentSynced, true
	case SyncTasks:
		return TaskSynced, true
	}
	return "", false
}

// SyncEventID is the event id of a synced record: a digest of its type, id
// and SoftPro updated_at. Pulling an unchanged record again yields the same
// id, so the projections apply it once however often it is synced; a changed
// record (new updated_at) is a new event.
func SyncEventID(t EventType, recordID string, updatedAt time.Time) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s", t, recordID, updatedAt.UTC().Format(time.RFC3339Nano))))
	return "sync_" + hex.EncodeToString(sum[:12])
}

// SoftProAuth names how softprohub authenticates to an integration's SoftPro
// API.
type SoftProAuth string

// Authentication methods of the SoftPro API.
const (
	// AuthAPIKey sends the key in the X-API-Key header.
	AuthAPIKey SoftProAuth = "api_key"
	// AuthOAuth exchanges a client id and secret for a bearer token
	// (OAuth 2.0 client credentials).
	AuthOAuth SoftProAuth = "oauth"
)

// SoftProConnection is where and how softprohub reaches one integration's
// SoftPro API. Secrets are plain here; stores seal them at rest.
type SoftProConnection struct {
	IntegrationID string
	// BaseURL is the API root; list endpoints are BaseURL + "/v1/<type>".
	BaseURL string
	Auth    SoftProAuth
	APIKey  string
	// OAuth client credentials; TokenURL defaults to BaseURL + "/oauth/token".
	ClientID     string
	ClientSecret string
	TokenURL     string
	UpdatedAt    time.Time
}

// MaskedSecret is how a stored secret is shown (by the API and the
// command line): never a secret's value.
const MaskedSecret = "***"

// Validate lists every problem with the connection settings: the base URL
// (and the token URL, when set) must be absolute http or https URLs with a
// host, and no secret may be MaskedSecret, which a client sending back a
// connection as it was shown would otherwise store in place of the real one.
func (c SoftProConnection) Validate() error {
	var v ValidationError
	if c.BaseURL == "" {
		v.Add("baseUrl is required")
	} else {
		// List endpoints are BaseURL + "/v1/<type>": a query or fragment
		// would swallow that path.
		checkHTTPURL(&v, "baseUrl", c.BaseURL, false)
	}
	if c.TokenURL != "" {
		checkHTTPURL(&v, "tokenUrl", c.TokenURL, true)
	}
	switch c.Auth {
	case AuthAPIKey:
		if c.APIKey == "" {
			v.Add("apiKey is required with auth %q", AuthAPIKey)
		}
	case AuthOAuth:
		if c.ClientID == "" || c.ClientSecret == "" {
			v.Add("clientId and clientSecret are required with auth %q", AuthOAuth)
		}
	default:
		v.Add("auth must be %q or %q", AuthAPIKey, AuthOAuth)
	}
	for _, s := range []struct{ field, value string }{{"apiKey", c.APIKey}, {"clientSecret", c.ClientSecret}} {
		if s.value == MaskedSecret {
			v.Add("%s must be the credential itself, not %q as it is shown; leave it out to keep the stored one", s.field, MaskedSecret)
		}
	}
	return v.Err()
}

// checkHTTPURL adds a problem to v unless raw is an absolute http or https
// URL with a host name (and, unless query is true, neither a query nor a
// fragment).
func checkHTTPURL(v *ValidationError, field, raw string, query bool) {
	u, err := url.Parse(raw)
	shown := raw // what the problem repeats: without a password
	if err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			shown = strings.Replace(u.Redacted(), "xxxxx", "…", 1)
		}
	}
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Hostname() == "":
		v.Add("%s must be an http or https URL with a host, such as https://softpro.example.com/api: got %q", field, shown)
	case !query && (u.RawQuery != "" || u.Fragment != "" || u.ForceQuery):
		v.Add("%s must not have a query or fragment: got %q", field, shown)
	case u.User != nil:
		// It would be a credential kept and shown in clear: credentials
		// go in the fields that are sealed and masked.
		v.Add("%s must not carry a user or password (put credentials in apiKey, or clientId and clientSecret): got %q", field, shown)
	}
}

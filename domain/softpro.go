package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// Validate lists every problem with the connection settings.
func (c SoftProConnection) Validate() error {
	var v ValidationError
	if c.BaseURL == "" {
		v.Add("baseUrl is required")
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
	return v.Err()
}

package domain

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
)

// SignatureScheme names how an integration's webhooks are signed.
type SignatureScheme string

// Supported signature schemes.
const (
	// SchemeSoftPro is hex HMAC-SHA256 of the raw body in x-softpro-signature
	// or x-signature, optionally prefixed "sha256=".
	SchemeSoftPro SignatureScheme = "softpro"
	// SchemeStandardWebhooks follows the Standard Webhooks specification.
	SchemeStandardWebhooks SignatureScheme = "standard-webhooks"
)

// Valid reports whether s is a supported scheme.
func (s SignatureScheme) Valid() bool {
	return s == SchemeSoftPro || s == SchemeStandardWebhooks
}

// Sync types an integration may pull.
const (
	SyncTransactions = "transactions"
	SyncContacts     = "contacts"
	SyncDocuments    = "documents"
	SyncTasks        = "tasks"
)

// SyncTypes are every sync type, in the order syncs run them.
var SyncTypes = []string{SyncTransactions, SyncContacts, SyncDocuments, SyncTasks}

// Secret is one webhook signing secret with the window in which it verifies.
// A zero NotAfter means it has not been rotated out.
type Secret struct {
	KeyID     string
	Value     []byte
	NotBefore time.Time
	NotAfter  time.Time
}

// ValidAt reports whether the secret verifies signatures at t.
func (s Secret) ValidAt(t time.Time) bool {
	if t.Before(s.NotBefore) {
		return false
	}
	return s.NotAfter.IsZero() || t.Before(s.NotAfter)
}

// RetryConfig is the per-integration webhook retry setting of the original
// system, kept as configuration.
type RetryConfig struct {
	MaxRetries   int `json:"maxRetries"`
	InitialDelay int `json:"initialDelay"`
}

// Integration is one SoftPro 360 connection of a customer organization.
type Integration struct {
	ID                  string
	OrganizationID      string
	Active              bool
	WebhookEnabled      bool
	SignatureScheme     SignatureScheme
	Secrets             []Secret
	SyncEnabled         bool
	SyncFrequency       int // minutes
	SyncTypes           []string
	LastSyncAt          *time.Time
	LastScheduledSyncAt *time.Time
	SyncStatus          string
	LastSyncError       *string
	RateLimit           int // SoftPro API requests per rate-limit window
	IngestRateLimit     int // webhooks per minute
	RetryConfig         *RetryConfig
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// ValidSecrets returns the secrets that verify signatures at t, newest first.
func (in Integration) ValidSecrets(t time.Time) []Secret {
	out := make([]Secret, 0, len(in.Secrets))
	for _, s := range in.Secrets {
		if s.ValidAt(t) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Secret) int { return b.NotBefore.Compare(a.NotBefore) })
	return out
}

// HasSecret reports whether the integration has any webhook secret at all.
func (in Integration) HasSecret() bool { return len(in.Secrets) > 0 }

// ErrNotFound is returned when an integration or event does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a create collides with an existing record.
var ErrConflict = errors.New("conflict")

// ValidationError lists every problem with an input, for a 400 answer.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%d problems: %v", len(e.Problems), e.Problems)
}

// Add records a problem.
func (e *ValidationError) Add(format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
}

// Err returns e when it holds problems, nil otherwise.
func (e *ValidationError) Err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// SettingsChange is a partial update of an integration's settings: a nil
// field keeps the stored value. SyncTypes set to an empty list clears them;
// a type named more than once is kept once, where it first appears.
// Secrets and the signature scheme change through a rotation, not here.
type SettingsChange struct {
	OrganizationID  *string
	Active          *bool
	WebhookEnabled  *bool
	SyncEnabled     *bool
	SyncFrequency   *int
	SyncTypes       []string
	RateLimit       *int
	IngestRateLimit *int
}

// Apply sets the fields c names on in.
func (c SettingsChange) Apply(in *Integration) {
	set(&in.OrganizationID, c.OrganizationID)
	set(&in.Active, c.Active)
	set(&in.WebhookEnabled, c.WebhookEnabled)
	set(&in.SyncEnabled, c.SyncEnabled)
	set(&in.SyncFrequency, c.SyncFrequency)
	set(&in.RateLimit, c.RateLimit)
	set(&in.IngestRateLimit, c.IngestRateLimit)
	if c.SyncTypes != nil {
		in.SyncTypes = firstOfEach(c.SyncTypes)
	}
}

// firstOfEach returns a new list of the values of list, each once, in the
// order of their first appearance; empty, not nil, for an empty list.
func firstOfEach(list []string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func set[T any](dst, src *T) {
	if src != nil {
		*dst = *src
	}
}

// MaxSyncFrequency is the longest time between scheduled syncs, in
// minutes: a year. Far longer ones would overflow the scheduler's
// durations (about 153 million minutes), which then ran a catch-up sync at
// every start.
const MaxSyncFrequency = 365 * 24 * 60

// newIDPattern is what a new integration's id may be: it appears in URL
// paths and Redis keys.
var newIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// ReservedIDs are the fixed path segments right under
// /api/v1/integrations/softpro/. An integration id equal to one would be
// routed to those routes rather than to the integration's own (GET
// …/softpro/projections is the projections status), so none may be one.
var ReservedIDs = []string{"projections", "sync", "webhooks"}

// ValidateNewID checks the id of an integration being created, whichever
// way it is created (API or CLI).
func ValidateNewID(id string) error {
	var v ValidationError
	switch {
	case !newIDPattern.MatchString(id):
		v.Add("id must be 1-128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit")
	case slices.Contains(ReservedIDs, id):
		v.Add("id must not be %s: they name routes under /api/v1/integrations/softpro/", strings.Join(ReservedIDs, ", "))
	}
	return v.Err()
}

// MaxOrganizationIDBytes bounds organizationId, which an index holds (a
// B-tree entry may not exceed about 2.7 kB).
const MaxOrganizationIDBytes = 1000

// ValidateSettings checks the user-settable fields of an integration.
func ValidateSettings(in Integration, minSyncInterval int) error {
	var v ValidationError
	if in.ID == "" {
		v.Add("id is required")
	} else if len(in.ID) > 128 {
		v.Add("id must be at most 128 characters")
	}
	if in.OrganizationID == "" {
		v.Add("organizationId is required")
	} else if len(in.OrganizationID) > MaxOrganizationIDBytes {
		v.Add("organizationId must be at most %d bytes", MaxOrganizationIDBytes)
	} else if strings.ContainsFunc(in.OrganizationID, unicode.IsControl) {
		// A newline or tab would let it pass for more rows or columns
		// wherever it is listed as text, as event ids may not either.
		v.Add("organizationId must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
	}
	if !in.SignatureScheme.Valid() {
		v.Add("signatureScheme must be %q or %q", SchemeSoftPro, SchemeStandardWebhooks)
	}
	if in.SyncFrequency < minSyncInterval {
		v.Add("syncFrequency must be at least %d minutes", minSyncInterval)
	}
	if in.SyncFrequency > MaxSyncFrequency {
		v.Add("syncFrequency must be at most %d minutes (a year)", MaxSyncFrequency)
	}
	for _, t := range in.SyncTypes {
		if !slices.Contains(SyncTypes, t) {
			v.Add("syncTypes: unknown type %q", t)
		}
	}
	for _, n := range []struct {
		name  string
		value int
	}{{"rateLimit", in.RateLimit}, {"ingestRateLimit", in.IngestRateLimit}} {
		switch {
		case n.value <= 0:
			v.Add("%s must be positive", n.name)
		case n.value > math.MaxInt32: // what the store's integer columns hold
			v.Add("%s must be at most %d", n.name, math.MaxInt32)
		}
	}
	return v.Err()
}

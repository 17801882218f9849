package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// integrationView is an integration as the API shows it: secrets never
// appear, only "***" and their key ids and windows.
type integrationView struct {
	ID                  string              `json:"id"`
	OrganizationID      string              `json:"organizationId"`
	Active              bool                `json:"active"`
	WebhookEnabled      bool                `json:"webhookEnabled"`
	WebhookSecret       *string             `json:"webhookSecret"`
	SignatureScheme     string              `json:"signatureScheme"`
	Secrets             []secretView        `json:"secrets"`
	SyncEnabled         bool                `json:"syncEnabled"`
	SyncFrequency       int                 `json:"syncFrequency"`
	SyncTypes           []string            `json:"syncTypes"`
	LastSyncAt          *time.Time          `json:"lastSyncAt"`
	LastScheduledSyncAt *time.Time          `json:"lastScheduledSyncAt"`
	SyncStatus          string              `json:"syncStatus"`
	LastSyncError       *string             `json:"lastSyncError"`
	RateLimit           int                 `json:"rateLimit"`
	IngestRateLimit     int                 `json:"ingestRateLimit"`
	WebhookRetryConfig  *domain.RetryConfig `json:"webhookRetryConfig"`
	CreatedAt           time.Time           `json:"createdAt"`
	UpdatedAt           time.Time           `json:"updatedAt"`
}

type secretView struct {
	KeyID     string     `json:"keyId"`
	NotBefore time.Time  `json:"notBefore"`
	NotAfter  *time.Time `json:"notAfter"`
}

// masked is how the API shows a stored secret.
const masked = domain.MaskedSecret

func viewIntegration(in domain.Integration) integrationView {
	v := integrationView{
		ID: in.ID, OrganizationID: in.OrganizationID, Active: in.Active, WebhookEnabled: in.WebhookEnabled,
		SignatureScheme: string(in.SignatureScheme), Secrets: []secretView{},
		SyncEnabled: in.SyncEnabled, SyncFrequency: in.SyncFrequency, SyncTypes: in.SyncTypes,
		LastSyncAt: in.LastSyncAt, LastScheduledSyncAt: in.LastScheduledSyncAt, SyncStatus: in.SyncStatus,
		LastSyncError: in.LastSyncError, RateLimit: in.RateLimit, IngestRateLimit: in.IngestRateLimit,
		WebhookRetryConfig: in.RetryConfig, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}
	if v.SyncTypes == nil {
		v.SyncTypes = []string{}
	}
	if in.HasSecret() {
		m := masked
		v.WebhookSecret = &m
	}
	for _, s := range in.Secrets {
		sv := secretView{KeyID: s.KeyID, NotBefore: s.NotBefore}
		if !s.NotAfter.IsZero() {
			na := s.NotAfter
			sv.NotAfter = &na
		}
		v.Secrets = append(v.Secrets, sv)
	}
	return v
}

type createIntegrationRequest struct {
	ID                 *string             `json:"id"`
	OrganizationID     string              `json:"organizationId"`
	Active             *bool               `json:"active"`
	WebhookEnabled     *bool               `json:"webhookEnabled"`
	WebhookSecret      *string             `json:"webhookSecret"`
	SignatureScheme    *string             `json:"signatureScheme"`
	SyncEnabled        *bool               `json:"syncEnabled"`
	SyncFrequency      *int                `json:"syncFrequency"`
	SyncTypes          []string            `json:"syncTypes"`
	RateLimit          *int                `json:"rateLimit"`
	IngestRateLimit    *int                `json:"ingestRateLimit"`
	WebhookRetryConfig *domain.RetryConfig `json:"webhookRetryConfig"`
}

func newIntegrationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "int_" + hex.EncodeToString(b[:])
}

// validateSecret checks a webhook secret for the scheme it will verify.
func validateSecret(v *domain.ValidationError, scheme domain.SignatureScheme, secret string) {
	if p := ingest.SecretProblem(scheme, secret); p != "" {
		v.Add("%s", p)
	}
}

func (s *server) createIntegration(w http.ResponseWriter, r *http.Request) {
	var req createIntegrationRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	in := domain.Integration{
		ID: newIntegrationID(), OrganizationID: req.OrganizationID, Active: true, WebhookEnabled: true,
		SignatureScheme: domain.SchemeSoftPro, SyncEnabled: true, SyncFrequency: s.cfg.DefaultSyncFrequency,
		SyncTypes:  []string{domain.SyncTransactions, domain.SyncContacts, domain.SyncDocuments},
		SyncStatus: "IDLE", RateLimit: s.cfg.DefaultRateLimit, IngestRateLimit: s.cfg.DefaultIngestRateLimit,
		RetryConfig: req.WebhookRetryConfig,
	}
	var v domain.ValidationError
	if req.ID != nil {
		var verr *domain.ValidationError
		if errors.As(domain.ValidateNewID(*req.ID), &verr) {
			v.Problems = append(v.Problems, verr.Problems...)
		}
		in.ID = *req.ID
	}
	domain.SettingsChange{
		Active: req.Active, WebhookEnabled: req.WebhookEnabled, SyncEnabled: req.SyncEnabled,
		SyncFrequency: req.SyncFrequency, SyncTypes: req.SyncTypes, RateLimit: req.RateLimit, IngestRateLimit: req.IngestRateLimit,
	}.Apply(&in)
	if req.SignatureScheme != nil {
		in.SignatureScheme = domain.SignatureScheme(*req.SignatureScheme)
	}
	secret := ""
	if req.WebhookSecret != nil {
		secret = *req.WebhookSecret
		validateSecret(&v, in.SignatureScheme, secret)
	}
	validateRetryConfig(&v, in.RetryConfig)
	if err := domain.ValidateSettings(in, s.cfg.MinSyncInterval); err != nil {
		var verr *domain.ValidationError
		if errors.As(err, &verr) {
			v.Problems = append(v.Problems, verr.Problems...)
		}
	}
	if err := v.Err(); err != nil {
		writeDomainError(w, err)
		return
	}
	created, err := s.integrations.Create(r.Context(), in, secret)
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	s.onChange(created.ID)
	writeData(w, http.StatusCreated, map[string]any{"integration": viewIntegration(created)})
}

func validateRetryConfig(v *domain.ValidationError, rc *domain.RetryConfig) {
	if rc == nil {
		return
	}
	if rc.MaxRetries < 0 || rc.MaxRetries > 20 {
		v.Add("retryConfig.maxRetries must be between 0 and 20")
	}
	if rc.InitialDelay < 0 || rc.InitialDelay > 3_600_000 {
		v.Add("retryConfig.initialDelay must be between 0 and 3600000 ms")
	}
}

// validateStorable refuses numbers the integration store's integer columns
// cannot hold, which would otherwise fail the write with a server error.
func validateStorable(v *domain.ValidationError, fields map[string]int) {
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if fields[name] > math.MaxInt32 {
			v.Add("%s must be at most %d", name, math.MaxInt32)
		}
	}
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func (s *server) listIntegrations(w http.ResponseWriter, r *http.Request) {
	list, err := s.integrations.List(r.Context())
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	views := make([]integrationView, 0, len(list))
	for _, in := range list {
		views = append(views, viewIntegration(in))
	}
	writeData(w, http.StatusOK, map[string]any{"integrations": views})
}

func (s *server) getIntegration(w http.ResponseWriter, r *http.Request) {
	in, err := s.integrations.Integration(r.Context(), pathParam(r, "id"))
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, map[string]any{"integration": viewIntegration(in)})
}

// updateIntegrationRequest is PATCH …/{id}: a field left out keeps its
// value. Secrets and the signature scheme change through PUT
// …/webhooks/config, which rotates.
type updateIntegrationRequest struct {
	OrganizationID     *string           `json:"organizationId"`
	Active             *bool             `json:"active"`
	WebhookEnabled     *bool             `json:"webhookEnabled"`
	SyncEnabled        *bool             `json:"syncEnabled"`
	SyncFrequency      *int              `json:"syncFrequency"`
	SyncTypes          []string          `json:"syncTypes"`
	RateLimit          *int              `json:"rateLimit"`
	IngestRateLimit    *int              `json:"ingestRateLimit"`
	WebhookRetryConfig *retryConfigPatch `json:"webhookRetryConfig"`
	// Named only to be refused with where they change.
	WebhookSecret   json.RawMessage `json:"webhookSecret"`
	SignatureScheme json.RawMessage `json:"signatureScheme"`
}

// updateIntegration changes the settings the body names, checked as a
// creation checks them, on the locked row: the scheduler, the SoftPro API
// quota and the webhook gate follow through integration_changed.
func (s *server) updateIntegration(w http.ResponseWriter, r *http.Request) {
	var req updateIntegrationRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if req.WebhookSecret != nil || req.SignatureScheme != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest,
			"webhookSecret and signatureScheme change through PUT /api/v1/integrations/softpro/webhooks/config, which rotates the secret")
		return
	}
	change := domain.SettingsChange{
		OrganizationID: req.OrganizationID, Active: req.Active, WebhookEnabled: req.WebhookEnabled,
		SyncEnabled: req.SyncEnabled, SyncFrequency: req.SyncFrequency, SyncTypes: req.SyncTypes,
		RateLimit: req.RateLimit, IngestRateLimit: req.IngestRateLimit,
	}
	updated, err := s.integrations.Update(r.Context(), pathParam(r, "id"), func(in *domain.Integration) error {
		change.Apply(in)
		var v domain.ValidationError
		if req.WebhookRetryConfig != nil {
			in.RetryConfig = req.WebhookRetryConfig.apply(in.RetryConfig)
			validateRetryConfig(&v, in.RetryConfig)
		}
		if err := domain.ValidateSettings(*in, s.cfg.MinSyncInterval); err != nil {
			var verr *domain.ValidationError
			if errors.As(err, &verr) {
				v.Problems = append(v.Problems, verr.Problems...)
			}
		}
		return v.Err()
	})
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	s.onChange(updated.ID)
	writeData(w, http.StatusOK, map[string]any{"integration": viewIntegration(updated)})
}

type webhookConfigRequest struct {
	IntegrationID string  `json:"integrationId"`
	Enabled       *bool   `json:"enabled"`
	Active        *bool   `json:"active"`
	WebhookSecret *string `json:"webhookSecret"`
	// SecretGraceSeconds, with webhookSecret, is how long the replaced
	// secret keeps verifying (0: revoked at once; default
	// WEBHOOK_SECRET_GRACE).
	SecretGraceSeconds *int              `json:"secretGraceSeconds"`
	SignatureScheme    *string           `json:"signatureScheme"`
	IngestRateLimit    *int              `json:"ingestRateLimit"`
	RetryConfig        *retryConfigPatch `json:"retryConfig"`
}

// retryConfigPatch is a retryConfig in an update: a field left out keeps
// its current value.
type retryConfigPatch struct {
	MaxRetries   *int `json:"maxRetries"`
	InitialDelay *int `json:"initialDelay"`
}

// apply returns cur with the fields p sets changed.
func (p *retryConfigPatch) apply(cur *domain.RetryConfig) *domain.RetryConfig {
	var out domain.RetryConfig
	if cur != nil {
		out = *cur
	}
	setIf(&out.MaxRetries, p.MaxRetries)
	setIf(&out.InitialDelay, p.InitialDelay)
	return &out
}

// maxSecretGraceSeconds bounds secretGraceSeconds: 30 days.
const maxSecretGraceSeconds = 30 * 24 * 3600

// updateWebhookConfig is the original PUT …/webhooks/config. A new
// webhookSecret rotates: the previous one keeps verifying for the grace
// period.
func (s *server) updateWebhookConfig(w http.ResponseWriter, r *http.Request) {
	var req webhookConfigRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	var v domain.ValidationError
	if req.IntegrationID == "" {
		v.Add("integrationId is required")
	}
	if req.SignatureScheme != nil && !domain.SignatureScheme(*req.SignatureScheme).Valid() {
		v.Add("signatureScheme must be %q or %q", domain.SchemeSoftPro, domain.SchemeStandardWebhooks)
	}
	if req.IngestRateLimit != nil && *req.IngestRateLimit <= 0 {
		v.Add("ingestRateLimit must be positive")
	}
	grace := s.cfg.SecretGrace
	if g := req.SecretGraceSeconds; g != nil {
		switch {
		case req.WebhookSecret == nil:
			v.Add("secretGraceSeconds applies to a new webhookSecret only")
		case *g < 0 || *g > maxSecretGraceSeconds:
			v.Add("secretGraceSeconds must be between 0 (the replaced secret revoked at once) and %d (30 days)", maxSecretGraceSeconds)
		default:
			grace = time.Duration(*g) * time.Second
		}
	}
	if req.IngestRateLimit != nil {
		validateStorable(&v, map[string]int{"ingestRateLimit": *req.IngestRateLimit})
	}
	if req.RetryConfig != nil {
		validateRetryConfig(&v, req.RetryConfig.apply(nil))
	}
	if err := v.Err(); err != nil {
		writeDomainError(w, err)
		return
	}
	update := func(in *domain.Integration) error {
		before := in.SignatureScheme
		setIf(&in.WebhookEnabled, req.Enabled)
		setIf(&in.Active, req.Active)
		setIf(&in.IngestRateLimit, req.IngestRateLimit)
		if req.SignatureScheme != nil {
			in.SignatureScheme = domain.SignatureScheme(*req.SignatureScheme)
		}
		if req.RetryConfig != nil {
			in.RetryConfig = req.RetryConfig.apply(in.RetryConfig)
		}
		if req.WebhookSecret != nil {
			var sv domain.ValidationError
			validateSecret(&sv, in.SignatureScheme, *req.WebhookSecret)
			return sv.Err()
		}
		if changed := in.SignatureScheme != before; changed && in.SignatureScheme == domain.SchemeStandardWebhooks {
			// Without a new secret one of the current ones must suit the new
			// scheme, or every webhook would be refused from now on.
			valid := in.ValidSecrets(s.cfg.Now())
			usable := slices.ContainsFunc(valid, func(sec domain.Secret) bool {
				return ingest.SecretProblem(domain.SchemeStandardWebhooks, string(sec.Value)) == ""
			})
			if len(valid) > 0 && !usable {
				return &domain.ValidationError{Problems: []string{
					"the integration's webhook secret is not a standard-webhooks secret: send a new webhookSecret (\"whsec_\" followed by base64) with the scheme"}}
			}
		}
		return nil
	}
	// The settings and a new secret are saved together or not at all.
	var updated domain.Integration
	var err error
	if req.WebhookSecret != nil {
		updated, err = s.integrations.UpdateRotating(r.Context(), req.IntegrationID, update, *req.WebhookSecret, grace, s.cfg.Now())
	} else {
		updated, err = s.integrations.Update(r.Context(), req.IntegrationID, update)
	}
	if err != nil {
		s.writeStoreError(w, r, err)
		return
	}
	s.onChange(updated.ID)
	writeData(w, http.StatusOK, map[string]any{"integration": viewIntegration(updated)})
}

func (s *server) writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	var verr *domain.ValidationError
	if !errors.As(err, &verr) && !errors.Is(err, domain.ErrNotFound) && !errors.Is(err, domain.ErrConflict) {
		s.log.ErrorContext(r.Context(), "integration store", "err", err)
	}
	writeDomainError(w, err)
}

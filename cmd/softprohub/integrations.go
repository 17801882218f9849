package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/postgres"
	"github.com/roisystems/softprohub/infra/secretbox"
	"github.com/roisystems/softprohub/ingest"
)

// withStore opens the integration store described by the environment.
func withStore(ctx context.Context, dev bool, fn func(cfg app.Config, s *postgres.IntegrationStore) error) error {
	cfg, err := app.LoadConfig()
	if err != nil {
		return err
	}
	if err := cfg.UseSecrets(dev); err != nil {
		return err
	}
	pool, err := app.OpenDatabase(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	box, err := secretbox.NewFromString(cfg.SecretsKey)
	if err != nil {
		return fmt.Errorf("SECRETS_KEY: %w", err)
	}
	return fn(cfg, postgres.NewIntegrationStore(pool, box))
}

// printIntegration prints an integration without its secrets.
func printIntegration(w io.Writer, in domain.Integration) error {
	type secret struct {
		KeyID     string     `json:"keyId"`
		NotBefore time.Time  `json:"notBefore"`
		NotAfter  *time.Time `json:"notAfter,omitempty"`
	}
	var secrets []secret
	for _, s := range in.Secrets {
		sv := secret{KeyID: s.KeyID, NotBefore: s.NotBefore}
		if !s.NotAfter.IsZero() {
			na := s.NotAfter
			sv.NotAfter = &na
		}
		secrets = append(secrets, sv)
	}
	enc := json.NewEncoder(jsonOut(w))
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"id": in.ID, "organizationId": in.OrganizationID, "active": in.Active, "webhookEnabled": in.WebhookEnabled,
		"signatureScheme": in.SignatureScheme, "webhookSecret": domain.MaskedSecret, "secrets": secrets,
		"syncEnabled": in.SyncEnabled, "syncFrequency": in.SyncFrequency, "syncTypes": in.SyncTypes,
		"rateLimit": in.RateLimit, "ingestRateLimit": in.IngestRateLimit, "syncStatus": in.SyncStatus,
	})
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whk_" + hex.EncodeToString(b)
}

// newSecretFor returns a generated secret that scheme can verify with: a
// Standard Webhooks secret is "whsec_" followed by base64.
func newSecretFor(scheme domain.SignatureScheme) string {
	if scheme == domain.SchemeStandardWebhooks {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		return "whsec_" + base64.StdEncoding.EncodeToString(b)
	}
	return newSecret()
}

// checkSecret refuses a secret the integration's scheme cannot use, as the
// API does.
func checkSecret(scheme domain.SignatureScheme, secret string) error {
	if p := ingest.SecretProblem(scheme, secret); p != "" {
		return &domain.ValidationError{Problems: []string{p}}
	}
	return nil
}

func newIntegrationsCmd() *cobra.Command {
	var dev bool
	cmd := &cobra.Command{Use: "integrations", Short: "Manage SoftPro integrations directly in the database"}
	cmd.PersistentFlags().BoolVar(&dev, "dev", false, "use the dev secrets in DATA_DIR when JWT_SECRET/SECRETS_KEY are unset")

	var id, org, secret, scheme string
	var ingestLimit, rateLimit int
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an integration; prints its webhook secret once if one was generated",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), dev, func(cfg app.Config, s *postgres.IntegrationStore) error {
				generated := secret == ""
				if generated {
					secret = newSecretFor(domain.SignatureScheme(scheme))
				}
				if id == "" {
					id = "int_" + newSecret()[4:20]
				} else if err := domain.ValidateNewID(id); err != nil {
					return err
				}
				in := domain.Integration{
					ID: id, OrganizationID: org, Active: true, WebhookEnabled: true,
					SignatureScheme: domain.SignatureScheme(scheme), SyncEnabled: true, SyncFrequency: cfg.SyncDefaultInterval,
					SyncTypes:  []string{domain.SyncTransactions, domain.SyncContacts, domain.SyncDocuments},
					SyncStatus: "IDLE", RateLimit: cfg.RateLimitDefault, IngestRateLimit: cfg.IngestRateLimit,
				}
				// A limit given is validated as given; only an absent one
				// takes the default.
				if cmd.Flags().Changed("rate-limit") {
					in.RateLimit = rateLimit
				}
				if cmd.Flags().Changed("ingest-rate-limit") {
					in.IngestRateLimit = ingestLimit
				}
				if err := domain.ValidateSettings(in, cfg.SyncMinInterval); err != nil {
					return err
				}
				if err := checkSecret(in.SignatureScheme, secret); err != nil {
					return err
				}
				created, err := s.Create(cmd.Context(), in, secret)
				if err != nil {
					return err
				}
				if generated {
					fmt.Fprintf(cmd.ErrOrStderr(), "webhook secret (shown once): %s\n", secret)
				}
				return printIntegration(cmd.OutOrStdout(), created)
			})
		},
	}
	create.Flags().StringVar(&id, "id", "", "integration id (generated when empty)")
	create.Flags().StringVar(&org, "org", "", "organization id (required)")
	create.Flags().StringVar(&secret, "secret", "", "webhook secret (generated when empty)")
	create.Flags().StringVar(&scheme, "scheme", string(domain.SchemeSoftPro), "signature scheme: softpro or standard-webhooks")
	create.Flags().IntVar(&ingestLimit, "ingest-rate-limit", 0, "webhooks per minute (default INGEST_RATE_LIMIT)")
	create.Flags().IntVar(&rateLimit, "rate-limit", 0, "SoftPro API requests per window (default RATE_LIMIT_DEFAULT)")
	_ = create.MarkFlagRequired("org")

	list := &cobra.Command{
		Use: "list", Short: "List integrations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), dev, func(_ app.Config, s *postgres.IntegrationStore) error {
				all, err := s.List(cmd.Context())
				if err != nil {
					return err
				}
				for _, in := range all {
					// Stored text is printed so that it cannot pass
					// for more lines or columns (see listText).
					fmt.Fprintf(cmd.OutOrStdout(), "%s\torg=%s\tactive=%t\twebhooks=%t\tscheme=%s\tkeys=%d\n",
						listText(in.ID), listText(in.OrganizationID), in.Active, in.WebhookEnabled,
						listText(string(in.SignatureScheme)), len(in.ValidSecrets(time.Now())))
				}
				return nil
			})
		},
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show one integration (secrets masked)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), dev, func(_ app.Config, s *postgres.IntegrationStore) error {
				in, err := s.Integration(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printIntegration(cmd.OutOrStdout(), in)
			})
		},
	}
	var newSecretValue string
	rotate := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Rotate the webhook secret; the previous one verifies for WEBHOOK_SECRET_GRACE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), dev, func(cfg app.Config, s *postgres.IntegrationStore) error {
				generated := newSecretValue == ""
				if generated {
					cur, err := s.Integration(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					newSecretValue = newSecretFor(cur.SignatureScheme)
				}
				// The check runs on the locked row, so a scheme changed
				// meanwhile is the one checked against.
				check := func(in *domain.Integration) error { return checkSecret(in.SignatureScheme, newSecretValue) }
				in, err := s.UpdateRotating(cmd.Context(), args[0], check, newSecretValue, cfg.WebhookSecretGrace, time.Now())
				if err != nil {
					return err
				}
				if generated {
					fmt.Fprintf(cmd.ErrOrStderr(), "new webhook secret (shown once): %s\n", newSecretValue)
				}
				return printIntegration(cmd.OutOrStdout(), in)
			})
		},
	}
	rotate.Flags().StringVar(&newSecretValue, "secret", "", "new secret (generated when empty)")
	cmd.AddCommand(create, list, show, rotate, newIntegrationsUpdateCmd(&dev))
	return cmd
}

// newIntegrationsUpdateCmd changes the settings its flags name, checked
// as PATCH /api/v1/integrations/softpro/{id} checks them.
func newIntegrationsUpdateCmd(dev *bool) *cobra.Command {
	var (
		org                               string
		active, webhooks, sync            bool
		frequency, rateLimit, ingestLimit int
		syncTypes                         []string
	)
	update := &cobra.Command{
		Use:   "update ID",
		Short: "Change an integration's settings: only those whose flags are given",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c domain.SettingsChange
			flags := cmd.Flags()
			if flags.Changed("org") {
				c.OrganizationID = &org
			}
			if flags.Changed("active") {
				c.Active = &active
			}
			if flags.Changed("webhook-enabled") {
				c.WebhookEnabled = &webhooks
			}
			if flags.Changed("sync-enabled") {
				c.SyncEnabled = &sync
			}
			if flags.Changed("sync-frequency") {
				c.SyncFrequency = &frequency
			}
			if flags.Changed("sync-types") {
				c.SyncTypes = append([]string{}, syncTypes...)
			}
			if flags.Changed("rate-limit") {
				c.RateLimit = &rateLimit
			}
			if flags.Changed("ingest-rate-limit") {
				c.IngestRateLimit = &ingestLimit
			}
			if flags.NFlag() == 0 || (flags.NFlag() == 1 && flags.Changed("dev")) {
				return fmt.Errorf("name at least one setting to change (see --help)")
			}
			return withStore(cmd.Context(), *dev, func(cfg app.Config, s *postgres.IntegrationStore) error {
				in, err := s.Update(cmd.Context(), args[0], func(in *domain.Integration) error {
					c.Apply(in)
					return domain.ValidateSettings(*in, cfg.SyncMinInterval)
				})
				if err != nil {
					return err
				}
				return printIntegration(cmd.OutOrStdout(), in)
			})
		},
	}
	f := update.Flags()
	f.StringVar(&org, "org", "", "organization id")
	f.BoolVar(&active, "active", false, "activate the integration (--active=false deactivates it)")
	f.BoolVar(&webhooks, "webhook-enabled", false, "accept its webhooks (--webhook-enabled=false refuses them)")
	f.BoolVar(&sync, "sync-enabled", false, "run its scheduled syncs (--sync-enabled=false stops them)")
	f.IntVar(&frequency, "sync-frequency", 0, "minutes between scheduled syncs")
	f.StringSliceVar(&syncTypes, "sync-types", nil, "sync types, replacing the list: transactions,contacts,documents,tasks")
	f.IntVar(&rateLimit, "rate-limit", 0, "SoftPro API requests per window")
	f.IntVar(&ingestLimit, "ingest-rate-limit", 0, "webhooks per minute")
	return update
}

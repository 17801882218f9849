package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

func newSyncCmd() *cobra.Command {
	var dev bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Run a sync now, show the scheduler status, or set an integration's SoftPro API connection",
	}
	cmd.PersistentFlags().BoolVar(&dev, "dev", false, "use the secrets serve --dev generated")
	config := func() (app.Config, error) {
		cfg, err := app.LoadConfig()
		if err != nil {
			return cfg, err
		}
		return cfg, cfg.UseSecrets(dev)
	}
	openWith := func(cmd *cobra.Command, cfg app.Config) (*app.SyncTool, error) {
		return app.OpenSyncTool(cmd.Context(), cfg, app.NewLogger(cfg.LogLevel, dev))
	}
	open := func(cmd *cobra.Command) (*app.SyncTool, error) {
		cfg, err := config()
		if err != nil {
			return nil, err
		}
		return openWith(cmd, cfg)
	}
	printJSON := func(cmd *cobra.Command, v any) error {
		enc := json.NewEncoder(jsonOut(cmd.OutOrStdout()))
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}

	var types []string
	var full bool
	run := &cobra.Command{
		Use:   "run INTEGRATION_ID",
		Short: "Sync one integration now, in this process (holding its lock), and print the run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := open(cmd)
			if err != nil {
				return err
			}
			defer t.Close()
			r, err := t.Syncer.Sync(cmd.Context(), ingest.SyncRequest{IntegrationID: args[0], Types: types, Trigger: ingest.TriggerManual, Full: full})
			if r.ID != 0 {
				if perr := printJSON(cmd, r); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	run.Flags().StringSliceVar(&types, "types", nil, "sync types (default: the integration's syncTypes)")
	run.Flags().BoolVar(&full, "full", false, "forget the watermarks first: pull every record")

	status := &cobra.Command{
		Use:   "status",
		Short: "Print every integration's schedule, next and last run and lock holder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := open(cmd)
			if err != nil {
				return err
			}
			defer t.Close()
			st, err := t.Status.Status(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(cmd, map[string]any{"integrations": st})
		},
	}

	var c domain.SoftProConnection
	var auth string
	connect := &cobra.Command{
		Use:   "connect INTEGRATION_ID",
		Short: "Set the SoftPro API base URL and credentials of an integration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.IntegrationID, c.Auth = args[0], domain.SoftProAuth(auth)
			cfg, err := config()
			if err != nil {
				return err
			}
			// As PUT …/sync/connection: without --base-url the connection
			// keeps none and syncs from SOFTPRO_API_URL; credentials left
			// out keep the stored ones.
			shown := c.BaseURL
			if c.BaseURL == "" {
				if cfg.SoftProAPIURL == "" {
					return errors.New("connect: give --base-url, or set SOFTPRO_API_URL")
				}
				shown = cfg.SoftProAPIURL + " (SOFTPRO_API_URL)"
			}
			t, err := openWith(cmd, cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			if err := ingest.CheckConnection(cmd.Context(), t.Store, c, cfg.SoftProAPIURL); err != nil {
				return err
			}
			if err := t.Store.SetConnection(cmd.Context(), c); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "connection of %s set: %s (%s)\n", c.IntegrationID, shown, c.Auth)
			return nil
		},
	}
	connect.Flags().StringVar(&c.BaseURL, "base-url", "", "API root; list endpoints are BASE/v1/<type> (default SOFTPRO_API_URL)")
	connect.Flags().StringVar(&auth, "auth", string(domain.AuthAPIKey), "api_key or oauth")
	connect.Flags().StringVar(&c.APIKey, "api-key", "", "API key (auth api_key)")
	connect.Flags().StringVar(&c.ClientID, "client-id", "", "OAuth client id")
	connect.Flags().StringVar(&c.ClientSecret, "client-secret", "", "OAuth client secret")
	connect.Flags().StringVar(&c.TokenURL, "token-url", "", "OAuth token URL (default BASE/oauth/token)")

	cmd.AddCommand(run, status, connect)
	return cmd
}

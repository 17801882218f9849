package main

import (
	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
)

func newServeCmd() *cobra.Command {
	var dev bool
	var roles string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the service (webhook ingest, API, projectors, scheduler)",
		Long: "Run the service. Without KAFKA_BROKERS an embedded Kafka-protocol broker runs in-process,\n" +
			"persisting under DATA_DIR/kafka. --dev creates and migrates the database if missing, generates\n" +
			"JWT_SECRET and SECRETS_KEY into DATA_DIR when unset, logs as text and prints an admin token\n" +
			"and a demo integration on first start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.LoadConfig()
			if err != nil {
				return err
			}
			r, err := app.ParseRoles(roles)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := app.New(ctx, cfg, app.Options{Dev: dev, Roles: r})
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Listen(); err != nil {
				return err
			}
			if dev {
				if err := a.BootstrapDev(ctx, cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return a.Run(ctx)
		},
	}
	cmd.Flags().BoolVar(&dev, "dev", false, "local development mode")
	cmd.Flags().StringVar(&roles, "roles", "ingest,api,project,schedule", "comma-separated roles to run")
	return cmd
}

func newMigrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded SQL migrations to DATABASE_URL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.LoadConfig()
			if err != nil {
				return err
			}
			return app.Migrate(cmd.Context(), cfg)
		},
	}
}

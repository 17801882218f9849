package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	httpapi "github.com/roisystems/softprohub/handlers/http"
)

func newTokenCmd() *cobra.Command {
	var role, subject string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a JWT for the management API (HS256 with JWT_SECRET)",
		Long: "Mint a JWT for the management API, signed with JWT_SECRET. Without JWT_SECRET it uses\n" +
			"the secret that `serve --dev` generated in DATA_DIR. Prints the bare token.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive (a token valid for %s is expired when it is minted)", ttl)
			}
			cfg, err := app.LoadConfig()
			if err != nil {
				return err
			}
			if cfg.JWTSecret == "" {
				ds, err := app.ReadDevSecrets(cfg.DataDir)
				if err != nil {
					return fmt.Errorf("JWT_SECRET is not set and %w; set JWT_SECRET or start `softprohub serve --dev` first", err)
				}
				cfg.JWTSecret = ds.JWT
			}
			tok, err := httpapi.IssueToken([]byte(cfg.JWTSecret), subject, role, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", httpapi.RoleAdmin, "role claim: admin or analyst")
	cmd.Flags().StringVar(&subject, "sub", "cli", "subject claim")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "validity, positive (e.g. 30m, 24h)")
	return cmd
}

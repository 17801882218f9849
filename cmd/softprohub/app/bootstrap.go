package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/roisystems/softprohub/domain"
	httpapi "github.com/roisystems/softprohub/handlers/http"
	"github.com/roisystems/softprohub/infra/secretbox"
)

// DemoIntegrationID is the integration dev mode creates on first start.
const DemoIntegrationID = "demo"

// BootstrapDev creates the demo integration when the database has none and
// prints, once, what a newcomer needs to send a signed webhook: an admin
// token, the integration id and its secret. Later starts print a token only.
func (a *App) BootstrapDev(ctx context.Context, out io.Writer) error {
	token, err := httpapi.IssueToken([]byte(a.cfg.JWTSecret), "dev", httpapi.RoleAdmin, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	list, err := a.store.List(ctx)
	if errors.Is(err, secretbox.ErrOpen) {
		return fmt.Errorf("dev bootstrap: %w\n"+
			"The database's integrations were sealed with another SECRETS_KEY than the one in %s "+
			"(another checkout, or a data folder made anew). Start with that checkout's DATA_DIR or "+
			"SECRETS_KEY, or, for a fresh dev setup, remove them: "+
			"psql '%s' -c 'TRUNCATE softpro_integrations CASCADE'",
			err, DevSecretsPath(a.cfg.DataDir), withoutPassword(a.cfg.DatabaseURL))
	}
	if err != nil {
		return fmt.Errorf("dev bootstrap: %w", err)
	}
	fmt.Fprintf(out, "\nsoftprohub dev mode\n  admin token (24h): %s\n", token)
	if len(list) > 0 {
		fmt.Fprintf(out, "  integrations: %d (the demo secret was printed on first start)\n\n", len(list))
		return nil
	}
	secret := "demo-" + randomHex(16)
	in := domain.Integration{
		ID: DemoIntegrationID, OrganizationID: "org_demo", Active: true, WebhookEnabled: true,
		SignatureScheme: domain.SchemeSoftPro, SyncEnabled: false, SyncFrequency: a.cfg.SyncDefaultInterval,
		SyncTypes:  []string{domain.SyncTransactions, domain.SyncContacts, domain.SyncDocuments},
		SyncStatus: "IDLE", RateLimit: a.cfg.RateLimitDefault, IngestRateLimit: a.cfg.IngestRateLimit,
	}
	if _, err := a.store.Create(ctx, in, secret); err != nil && !errors.Is(err, domain.ErrConflict) {
		return fmt.Errorf("dev bootstrap: %w", err)
	}
	fmt.Fprintf(out, "  demo integration:  %s\n  demo secret:       %s   (shown once; rotate with PUT /api/v1/integrations/softpro/webhooks/config)\n\n",
		DemoIntegrationID, secret)
	return nil
}

// withoutPassword is a database URL as it may be shown: its password left
// out (psql asks for it).
func withoutPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

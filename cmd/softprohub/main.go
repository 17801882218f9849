// Command softprohub runs the SoftPro 360 integration hub: the webhook
// ingest, the management API, the projectors and the sync scheduler, plus
// the operator tools around them.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "softprohub:", err)
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		os.Exit(1)
	}
}

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "softprohub",
		Short:         "SoftPro 360 webhooks into an event log, projected into Postgres read models",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newMigrateCmd(), newIntegrationsCmd(), newTokenCmd(), newKafkaCmd(), newLogCmd(), newHealthcheckCmd(), newSyncCmd())
	root.AddCommand(newReplayCmds()...)
	return root
}

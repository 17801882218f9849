// Command softprosim stands in for SoftPro when testing and benchmarking
// softprohub. Its subcommands:
//
//   - load: a signed webhook load generator, flat out or at a fixed rate
//     (open loop), reporting throughput, latency percentiles and errors;
//   - ceiling: a bare HTTP server that only verifies signatures, the upper
//     bound the service's ingest throughput is compared against.
//
// scripts/bench-ingest.sh drives both.
package main

import (
	"context"
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
		fmt.Fprintln(os.Stderr, "softprosim:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "softprosim",
		Short:         "SoftPro simulator: webhook load generator and benchmark ceiling",
		SilenceErrors: true,
	}
	root.AddCommand(newLoadCmd(), newCeilingCmd(), newBenchProjectCmd(), newServeCmd(), newBenchSyncCmd(), newBenchReplayCmd())
	return root
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/roisystems/softprohub/cmd/softprohub/app"
	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/projections"
)

// recoveryOpener opens the recovery tools from the environment.
type recoveryOpener struct {
	dev bool
}

func (o *recoveryOpener) open(cmd *cobra.Command, opts app.RecoveryOptions) (*app.RecoveryTool, error) {
	cfg, err := app.LoadConfig()
	if err != nil {
		return nil, err
	}
	if o.dev {
		if err := cfg.UseSecrets(true); err != nil {
			return nil, err
		}
	}
	return app.OpenRecoveryTool(cmd.Context(), cfg, app.NewLogger(cfg.LogLevel, o.dev), opts)
}

// openFor is open for a command of one integration: one that does not
// exist is refused before any work, as its route answers 404.
func (o *recoveryOpener) openFor(cmd *cobra.Command, opts app.RecoveryOptions, id string) (*app.RecoveryTool, error) {
	t, err := o.open(cmd, opts)
	if err != nil {
		return nil, err
	}
	if err := t.KnownIntegration(cmd.Context(), id); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// needsSecretsKey says why a recovery command has no scheduled sync:
// OpenRecoveryTool wires it only with SECRETS_KEY, which reads the stored
// connections.
const needsSecretsKey = "scheduled sync needs SECRETS_KEY (set it, or pass --dev)"

// exitPartial is the exit status of a gaps fill that printed its report
// but left something undone (FillReport.Partial): a gap it could not
// fill, or a side it could not check because the SoftPro API failed.
const exitPartial exitCode = 3

// notCheckedReasons puts, for the sides this process does not wire
// (notWired), needsSecretsKey as the reason: the only way the CLI leaves
// them out.
func notCheckedReasons(reasons map[string]string, notWired []string) {
	for _, side := range notWired {
		if _, ok := reasons[side]; ok {
			reasons[side] = needsSecretsKey
		}
	}
}

// partialWhat says what a partial fill left undone.
func partialWhat(rep projections.FillReport, notWired []string) string {
	var what []string
	if n := len(rep.Errors); n > 0 {
		what = append(what, fmt.Sprintf("%d gaps not filled", n))
	}
	for _, side := range rep.NotChecked {
		if !slices.Contains(notWired, side) {
			what = append(what, "the "+side+" side not checked")
		}
	}
	return strings.Join(what, "; ")
}

// warnNotChecked tells the operator which sides of gap detection were left
// out, and why: those not wired (notWired) because scheduled sync needs
// SECRETS_KEY, and any the SoftPro API failed.
func warnNotChecked(w io.Writer, sides []string, reasons map[string]string, notWired []string) {
	var unwired []string
	for _, side := range sides {
		if !slices.Contains(notWired, side) {
			fmt.Fprintf(w, "gaps: the %s side was not checked, because %s\n", side, reasons[side])
			continue
		}
		unwired = append(unwired, side)
	}
	if len(unwired) == 0 {
		return
	}
	noun := "side was"
	if len(unwired) > 1 {
		noun = "sides were"
	}
	fmt.Fprintf(w, "gaps: the %s %s not checked, because %s\n", strings.Join(unwired, " and "), noun, needsSecretsKey)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseWhen reads flag's value: RFC 3339, or a duration meaning that long
// ago.
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %q is neither RFC 3339 nor a duration like 2h", flag, s)
	}
	return t, nil
}

func newReplayCmds() []*cobra.Command {
	o := &recoveryOpener{}
	var integration, from, to string
	var types []string
	replay := &cobra.Command{
		Use:   "replay --integration ID [--types T,…] [--from T1] [--to T2]",
		Short: "Apply a window of the log again to the live read models (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.openFor(cmd, app.RecoveryOptions{}, integration)
			if err != nil {
				return err
			}
			defer t.Close()
			req := projections.ReplayRequest{IntegrationID: integration}
			if req.From, err = parseWhen("from", from); err != nil {
				return err
			}
			if req.To, err = parseWhen("to", to); err != nil {
				return err
			}
			for _, ty := range types {
				req.Types = append(req.Types, domain.EventType(strings.TrimSpace(ty)))
			}
			// As over HTTP, a replay that fails reports its error alone: it
			// is idempotent, so it is simply run again.
			rep, err := t.Replayer.Replay(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), rep)
		},
	}
	replay.Flags().StringVar(&integration, "integration", "", "integration id (required)")
	replay.Flags().StringSliceVar(&types, "types", nil, "event types (default all)")
	replay.Flags().StringVar(&from, "from", "", "window start: RFC 3339 or a duration ago (default the log start)")
	replay.Flags().StringVar(&to, "to", "", "window end, exclusive (default now)")
	_ = replay.MarkFlagRequired("integration")

	var projection, asOf, schema string
	var replace bool
	var batch, workers int
	rebuild := &cobra.Command{
		Use:   "rebuild [--projection all] [--as-of T --schema NAME]",
		Short: "Rebuild every read model from the log into a new schema and swap it in, or build a point-in-time copy",
		Long: `rebuild builds the read models from the start of the log into a new schema, catches up with
the head, pauses the live projectors briefly, swaps the schemas in one transaction and hands the
rebuilt checkpoints over. Readers never see an empty table. Every projection writes the same tables,
so the unit of a rebuild is all of them: --projection accepts "all" or any one projection name and
rebuilds all of them either way.

With --as-of, the read models as they were at that time are built into --schema, next to the live
ones, which are not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := app.ProjectionNames()
			known := projection == "all"
			for _, n := range names {
				known = known || n == projection
			}
			if !known {
				return fmt.Errorf("unknown projection %q", projection)
			}
			if batch <= 0 || workers <= 0 {
				return errors.New("--batch and --workers must be positive")
			}
			// A command meant for a copy must never swap the live models:
			// any of the copy's flags, even given empty or false (a script's
			// unset variable), makes it one, which then needs --as-of and
			// --schema.
			flags := cmd.Flags()
			copying := flags.Changed("as-of") || flags.Changed("schema") || flags.Changed("replace")
			if copying && asOf == "" {
				return errors.New("--schema and --replace are for a point-in-time build and need --as-of; without any of them, rebuild builds its own schema and swaps it in")
			}
			var when time.Time
			if copying {
				var err error
				if when, err = parseWhen("as-of", asOf); err != nil {
					return err
				}
				// As over HTTP: the zero time would read as no --as-of.
				if when.IsZero() {
					return errors.New("--as-of must be later than 0001-01-01T00:00:00Z")
				}
				if schema == "" {
					return errors.New("--as-of needs --schema, the schema to build the copy into")
				}
			}
			out := cmd.ErrOrStderr()
			t, err := o.open(cmd, app.RecoveryOptions{BatchSize: batch, Workers: workers, OnProgress: func(r projections.RebuildRun) {
				fmt.Fprintf(out, "\r%-11s %12d applied  %9.0f events/s  %10d offsets left  ETA %-8s",
					r.State, r.Progress.Applied, r.Progress.Rate, r.Progress.Left, r.Progress.ETA.Round(time.Second))
			}})
			if err != nil {
				return err
			}
			defer t.Close()
			var run projections.RebuildRun
			if copying {
				run, err = t.Rebuilder.AsOf(cmd.Context(), when, schema, replace)
			} else {
				run, err = t.Rebuilder.Rebuild(cmd.Context())
			}
			if run.ID == 0 {
				// Refused before a run began: nothing to show.
				return err
			}
			fmt.Fprintln(out)
			if perr := printJSON(cmd.OutOrStdout(), run); perr != nil {
				return perr
			}
			return err
		},
	}
	rebuild.Flags().StringVar(&projection, "projection", "all", "projection to rebuild (all of them share the read models)")
	rebuild.Flags().StringVar(&asOf, "as-of", "", "build the state at this time (RFC 3339 or a duration ago; not after now) into --schema")
	rebuild.Flags().StringVar(&schema, "schema", "", "schema of the point-in-time copy")
	rebuild.Flags().BoolVar(&replace, "replace", false, "drop --schema first if it exists")
	rebuild.Flags().IntVar(&batch, "batch", projections.DefaultRebuildBatch, "records per transaction")
	rebuild.Flags().IntVar(&workers, "workers", projections.DefaultRebuildWorkers, "transactions in flight")

	var behind time.Duration
	gaps := &cobra.Command{
		Use:   "gaps INTEGRATION_ID",
		Short: "List an integration's gaps: log, schedule and data side, and read-model rows that disagree with the log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positiveBehind(behind); err != nil {
				return err
			}
			t, err := o.openFor(cmd, app.RecoveryOptions{Behind: behind}, args[0])
			if err != nil {
				return err
			}
			defer t.Close()
			// A side the SoftPro API fails is named in the report, as a
			// side not wired is: the others are reported, exit status 0.
			rep, err := t.Recovery.Gaps(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			notWired := t.Recovery.NotChecked()
			notCheckedReasons(rep.NotCheckedReasons, notWired)
			warnNotChecked(cmd.ErrOrStderr(), rep.NotChecked, rep.NotCheckedReasons, notWired)
			return printJSON(cmd.OutOrStdout(), rep)
		},
	}
	gaps.PersistentFlags().DurationVar(&behind, "behind", 5*time.Minute, "how long a projection may lag before it is a gap")
	fill := &cobra.Command{
		Use:   "fill INTEGRATION_ID",
		Short: "Fill an integration's gaps: replay, retry poisoned events, sync, refold rows",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := positiveBehind(behind); err != nil {
				return err
			}
			t, err := o.openFor(cmd, app.RecoveryOptions{Behind: behind}, args[0])
			if err != nil {
				return err
			}
			defer t.Close()
			// Gaps that cannot be filled are in the report; an error is
			// one that stopped the fill, such as the gaps not being found
			// (exit status 1, no report). A fill that left something
			// undone prints its report and exits 3.
			rep, err := t.Recovery.Fill(cmd.Context(), args[0], "cli-gaps-fill")
			if err != nil {
				return err
			}
			notWired := t.Recovery.NotChecked()
			notCheckedReasons(rep.NotCheckedReasons, notWired)
			warnNotChecked(cmd.ErrOrStderr(), rep.NotChecked, rep.NotCheckedReasons, notWired)
			if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
				return err
			}
			if rep.Partial {
				return fmt.Errorf("gaps fill %s was partial (%s): %w", args[0], partialWhat(rep, notWired), exitPartial)
			}
			return nil
		},
	}
	gaps.AddCommand(fill)

	resync := &cobra.Command{
		Use:   "resync INTEGRATION_ID",
		Short: "Emergency: pull everything from the SoftPro API into the log, then re-apply the integration's log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := o.openFor(cmd, app.RecoveryOptions{}, args[0])
			if err != nil {
				return err
			}
			defer t.Close()
			rep, err := t.Recovery.Resync(cmd.Context(), args[0])
			if errors.Is(err, projections.ErrNoSync) {
				return fmt.Errorf("resync %s: %s", args[0], needsSecretsKey)
			}
			// The report ends with the validation after the resync: a
			// resync that failed has none to show.
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), rep)
		},
	}

	validate := &cobra.Command{
		Use:   "validate INTEGRATION_ID",
		Short: "Compare an integration's read models with its log: score 0–100 and the issues",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := o.openFor(cmd, app.RecoveryOptions{}, args[0])
			if err != nil {
				return err
			}
			defer t.Close()
			rep, err := t.Recovery.Validate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), rep)
		},
	}

	status := &cobra.Command{
		Use:   "projections",
		Short: "Print every projection: checkpoints, lag per partition, state, last error, and the last rebuild",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.open(cmd, app.RecoveryOptions{})
			if err != nil {
				return err
			}
			defer t.Close()
			rep, err := t.Status(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), rep)
		},
	}
	cmds := []*cobra.Command{replay, rebuild, gaps, resync, validate, status}
	for _, c := range cmds {
		c.PersistentFlags().BoolVar(&o.dev, "dev", false, "use the secrets serve --dev generated")
	}
	return cmds
}

// positiveBehind refuses a --behind that is not positive: a record is a
// gap once it has waited that long, and 0 would mean the default.
func positiveBehind(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--behind must be positive (1s counts every record not yet projected), not %v", d)
	}
	return nil
}

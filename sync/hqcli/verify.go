package hqcli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"posagent/sync/hq"
)

// maxDiffs bounds what verify prints of a disagreement.
const maxDiffs = 50

func verifyCmd(f *flags) *cobra.Command {
	var rebuild bool
	var archive string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check the KPI aggregates against a recomputation from the stored entries",
		Long: `verify recomputes every KPI aggregate (per-day and per-month counters, and
the per-sale and per-member facts behind them) from the stored entries and
compares it with what the store holds; they must agree exactly. It reads the
whole history, so run it off-peak. It works on the storage (--db or --pg),
not through --url; a bbolt file must not be held by a running hq serve.

After hq archive, give --archive with the directory it wrote to: the
archived months are read from their files (checked against their
SHA-256) before the stored entries, so the recomputation covers the whole
history; without it verify refuses rather than report every archived month
as a mismatch.

With --rebuild, aggregates that disagree are rebuilt from the entries (one
transaction; uploads wait for it) and checked again.`,
		Example: `  posagent hq verify --db /var/lib/hq/hq.db
  posagent hq verify --pg postgres://hq@db/hq --rebuild`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.url != "" {
				return errors.New("verify works on the storage (--db or --pg), not through --url")
			}
			ctx := cmd.Context()
			st, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			diffs, err := hq.VerifyAggregatesWith(ctx, st, archive)
			if err != nil {
				return err
			}
			if len(diffs) > 0 && rebuild {
				report(f, diffs)
				if diffs, err = rebuildAndVerify(ctx, st); err != nil {
					return err
				}
				fmt.Fprintln(f.out, "rebuilt the aggregates from the entries")
			}
			if len(diffs) > 0 {
				report(f, diffs)
				return fmt.Errorf("the KPI aggregates differ from the entries in %d places (hq verify --rebuild rebuilds them)", len(diffs))
			}
			fmt.Fprintln(f.out, "KPI aggregates agree exactly with the stored entries")
			return nil
		},
	}
	c.Flags().StringVar(&archive, "archive", "", "directory hq archive wrote the archived months to")
	c.Flags().BoolVar(&rebuild, "rebuild", false, "rebuild aggregates that disagree, then check again")
	return c
}

func rebuildAndVerify(ctx context.Context, st hq.Store) ([]string, error) {
	cfg, err := st.AggConfig(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.RebuildAggregates(ctx, cfg); err != nil {
		return nil, err
	}
	return hq.VerifyAggregates(ctx, st)
}

func report(f *flags, diffs []string) {
	for i, d := range diffs {
		if i == maxDiffs {
			fmt.Fprintf(f.errw, "... and %d more\n", len(diffs)-maxDiffs)
			break
		}
		fmt.Fprintln(f.errw, d)
	}
}

package hqcli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/sync/hq"

	"posagent/ledger/entry"
)

func membersCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:     "members",
		Aliases: []string{"member"},
		Short:   "Members flagged for review (a balance below zero, a coupon used twice): list them, clear the flag",
		Example: `  posagent hq members flagged
  posagent hq members review M000123 --note "paid the difference in cash"`,
	}
	flagged := &cobra.Command{
		Use:   "flagged",
		Short: "List the members waiting for review",
		Example: `  posagent hq members flagged
  posagent hq members flagged --url https://hq:8443 --token $HQ_TOKEN`,
		Args: cobra.NoArgs,
		RunE: withOps(f, func(ctx context.Context, o ops) error {
			ms, err := o.flagged(ctx)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				fmt.Fprintln(f.out, "no member is waiting for review")
				return nil
			}
			tw := tabwriter.NewWriter(f.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPOINTS\tSTORED VALUE ¥\tLAST SALE\tREVIEWED BEFORE")
			for _, m := range ms {
				name, last := "", "-"
				if m.Data != nil {
					name = m.Data.Name
				}
				if !m.LastSale.IsZero() {
					last = m.LastSale.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\n", m.ID, name, m.Points, entry.FormatFen(m.StoredValue), last, len(m.Reviews))
			}
			return tw.Flush()
		}),
	}
	var by, note string
	review := &cobra.Command{
		Use:   "review ID",
		Short: "Clear a member's flag after review (the entries stay; balances stand as they are)",
		Long: `review records who cleared the flag, when and why, with the balances as they
stand, and clears the flag; the stores get the member again with their next
sync. It changes no balance and removes no entry: a negative balance stays
until the member tops up or earns it back, and an entry that leaves a balance
below zero again flags the member again.

Through a running HQ (--url) the admin token names the reviewer; on the
storage itself --by does (default: the operating-system user).`,
		Example: `  posagent hq members review M000123 --note "paid the difference in cash"
  posagent hq members review M000123 --url https://hq:8443 --token $HQ_TOKEN`,
		Args: cobra.ExactArgs(1),
	}
	review.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(f, func(ctx context.Context, o ops) error {
			who := by
			if _, local := o.(*local); local && who == "" {
				var err error
				if who, err = osUser(); err != nil {
					return err
				}
			}
			m, err := o.review(ctx, args[0], who, note)
			if errors.Is(err, hq.ErrNotFlagged) {
				return fmt.Errorf("%w (see: posagent hq members flagged)", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(f.out, "reviewed %s: flag cleared (points %d, stored value %s yuan); the entries stay\n", m.ID, m.Points, entry.FormatFen(m.StoredValue))
			return nil
		})(cmd, args)
	}
	review.Flags().StringVar(&note, "note", "", "what was checked or agreed (kept with the review)")
	review.Flags().StringVar(&by, "by", "", "reviewer's name when working on the storage (default: the operating-system user)")
	c.AddCommand(flagged, review, cardLinkCmd(f))
	return c
}

// osUser names the reviewer when hq works on the storage directly.
func osUser() (string, error) {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	for _, k := range []string{"USER", "USERNAME"} {
		if v := os.Getenv(k); v != "" {
			return v, nil
		}
	}
	return "", errors.New("name the reviewer with --by")
}

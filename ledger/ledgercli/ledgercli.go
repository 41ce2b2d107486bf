// Package ledgercli is the `posagent ledger` command group: verify, export,
// compact and a sale straight into the ledger file, for maintenance and for
// trying the flow from a shell without a POS.
package ledgercli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"posagent/ledger"
	"posagent/ledger/loyalty"

	"posagent/ledger/entry"
)

// Opener returns the ledger path and options from the configuration.
type Opener func() (path string, o ledger.Options, err error)

// NewCommand returns the `ledger` command with its subcommands.
func NewCommand(open Opener) *cobra.Command {
	c := &cobra.Command{
		Use:   "ledger",
		Short: "Maintain the offline loyalty ledger file (verify, export, compact, sale)",
		Long: `The ledger is the till's bbolt file of sales, refunds, top-ups and enrolments.
These commands open the file directly, so stop the agent first (the file is locked
while it runs); to sell through a running agent use "posagent sale".`,
		Example: `  posagent ledger verify
  posagent ledger export --out entries.jsonl
  posagent ledger compact --out /var/lib/posagent/ledger.compact.db
  posagent ledger sale --member M1 --receipt R1001 --line A100:2:12.50 --line TOBACCO:1:25:nd:ne`,
	}
	c.AddCommand(verifyCmd(open), exportCmd(open), compactCmd(open), saleCmd(open))
	return c
}

func openLedger(open Opener, hint string) (*ledger.Ledger, error) {
	path, o, err := open()
	if err != nil {
		return nil, err
	}
	l, err := ledger.Open(path, o)
	if errors.Is(err, ledger.ErrLocked) && hint != "" {
		return nil, fmt.Errorf("%w\n%s", err, hint)
	}
	return l, err
}

const stopAgent = "The agent is running and holds the ledger; stop it (systemctl stop posagent) and run this again."

func verifyCmd(open Opener) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Recompute every balance from the entries and check the ledger's invariants",
		Long: `verify replays every entry (and every member state HQ sent) and compares the
result with the cached balances, points lots and coupons; checks that each till's
sequence is gapless, that every refund and void points to a sale, that no
idempotency key is used twice, and runs bbolt's own consistency check.
It prints a report and exits non-zero on any break.`,
		Example: `  posagent ledger verify`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := openLedger(open, stopAgent)
			if err != nil {
				return err
			}
			defer l.Close()
			ok, err := l.Verify(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("ledger verify found breaks (report above); keep the file and take a copy before anything else")
			}
			return nil
		},
	}
}

func bar(w io.Writer, total int64, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}

func exportCmd(open Opener) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "export",
		Short: "Write every entry as JSON lines, in commit order",
		Example: `  posagent ledger export > entries.jsonl
  posagent ledger export --out entries.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := openLedger(open, stopAgent)
			if err != nil {
				return err
			}
			defer l.Close()
			w := cmd.OutOrStdout()
			var progress func(done, total int)
			if out != "" && out != "-" {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					return fmt.Errorf("export: %w (choose a new file name; nothing is overwritten)", err)
				}
				defer f.Close()
				w = f
				var b *progressbar.ProgressBar
				progress = func(done, total int) {
					if b == nil {
						b = bar(cmd.ErrOrStderr(), int64(total), "exporting")
					}
					b.Set(done)
				}
				if err := l.Export(w, progress); err != nil {
					return err
				}
				return f.Sync()
			}
			return l.Export(w, nil)
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to write (new file; default standard output)")
	return c
}

func compactCmd(open Opener) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "compact",
		Short: "Copy the ledger into a new, compact file (the original is left as it is)",
		Long: `compact copies the ledger into a new file without free pages. The original is
not touched; to use the compact copy, stop the agent and move it in place.`,
		Example: `  posagent ledger compact --out /var/lib/posagent/ledger.compact.db
  mv /var/lib/posagent/ledger.db /var/lib/posagent/ledger.old.db
  mv /var/lib/posagent/ledger.compact.db /var/lib/posagent/ledger.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _, err := open()
			if err != nil {
				return err
			}
			if out == "" {
				out = strings.TrimSuffix(path, ".db") + ".compact.db"
			}
			var b *progressbar.ProgressBar
			err = ledger.Compact(path, out, func(done, total int64) {
				if b == nil {
					b = bar(cmd.ErrOrStderr(), total, "compacting")
				}
				b.Set64(done)
			})
			if errors.Is(err, ledger.ErrLocked) {
				return fmt.Errorf("%w\n%s", err, stopAgent)
			}
			if err != nil {
				return err
			}
			before, _ := os.Stat(path)
			after, _ := os.Stat(out)
			if before != nil && after != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "compacted %s (%d bytes) into %s (%d bytes)\n", path, before.Size(), out, after.Size())
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "new file to write (default: <ledger>.compact.db)")
	return c
}

// ParseLine reads "sku:qty:price[:nd][:ne]": price in yuan ("12.50"), nd =
// not discountable, ne = earns no points.
func ParseLine(no int, s string) (loyalty.Line, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 {
		return loyalty.Line{}, fmt.Errorf("line %q: want sku:qty:price[:nd][:ne], e.g. A100:2:12.50", s)
	}
	l := loyalty.Line{LineNo: no, SKU: parts[0], Discountable: true, EarnsPoints: true}
	if l.SKU == "" {
		return l, fmt.Errorf("line %q: the SKU is empty", s)
	}
	q, err := ParseCount("quantity", parts[1], loyalty.MaxQty)
	if err != nil {
		return l, fmt.Errorf("line %q: %v", s, err)
	}
	l.Qty = q
	if l.UnitPrice, err = entry.ParseYuan(parts[2]); err != nil {
		return l, fmt.Errorf("line %q: %v", s, err)
	}
	for _, f := range parts[3:] {
		switch f {
		case "nd":
			l.Discountable = false
		case "ne":
			l.EarnsPoints = false
		default:
			return l, fmt.Errorf("line %q: unknown flag %q (nd: not discountable, ne: earns no points)", s, f)
		}
	}
	return l, nil
}

func saleCmd(open Opener) *cobra.Command {
	var (
		r        ledger.SaleRequest
		lines    []string
		sv       string
		quote    bool
		asJSON   bool
		timeout  time.Duration
		atString string
	)
	c := &cobra.Command{
		Use:   "sale",
		Short: "Price and commit a sale straight into the ledger file (agent stopped)",
		Long: `sale prices a basket for a member (or a non-member) and commits it to the ledger
file, exactly as a sale from the POS would be. Each --line is sku:qty:price with
the price in yuan, optionally :nd (not discountable) and :ne (earns no points).
The receipt id makes the sale idempotent: the same command again returns the
first sale. With --quote nothing is written.`,
		Example: `  posagent ledger sale --member M1 --receipt R1001 --line A100:2:12.50 --line B7:1:99
  posagent ledger sale --member M1 --receipt R1002 --line A100:1:80 --redeem 1000 --coupon welcome-M1
  posagent ledger sale --receipt R1003 --line TOBACCO:1:25:nd:ne --quote`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for i, s := range lines {
				l, err := ParseLine(i+1, s)
				if err != nil {
					return err
				}
				r.Lines = append(r.Lines, l)
			}
			if len(r.Lines) == 0 {
				return errors.New("give at least one --line sku:qty:price")
			}
			if sv != "" {
				v, err := entry.ParseYuan(sv)
				if err != nil {
					return fmt.Errorf("--stored-value: %v", err)
				}
				r.StoredValue = v
			}
			if atString != "" {
				t, err := time.Parse(time.RFC3339, atString)
				if err != nil {
					return fmt.Errorf("--at %q: give RFC 3339, e.g. 2025-06-18T10:00:00+08:00", atString)
				}
				r.At = t
			}
			if !quote && r.ReceiptID == "" {
				return errors.New("--receipt is required to commit (it makes the sale idempotent); use --quote to price only")
			}
			l, err := openLedger(open, `The agent is running and holds the ledger: sell through it with "posagent sale" (same flags), or stop the agent first.`)
			if err != nil {
				return err
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			w := cmd.OutOrStdout()
			if quote {
				q, err := l.Quote(ctx, r)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(w).Encode(q)
				}
				for _, ql := range q.Lines {
					fmt.Fprintf(w, "%3d %-12s %4d × %10s = %10s  paid %10s  points %d\n", ql.LineNo, ql.SKU, ql.Qty, entry.FormatFen(ql.UnitPrice), entry.FormatFen(ql.Gross), entry.FormatFen(ql.Paid), ql.EarnedPoints)
				}
				fmt.Fprintf(w, "gross %s  discount %s  coupon %s  redeemed %d points (%s)  due %s  points earned %d (×%d)\n",
					entry.FormatFen(q.Gross), entry.FormatFen(q.Discount), entry.FormatFen(q.CouponValue), q.RedeemPoints, entry.FormatFen(q.RedeemValue), entry.FormatFen(q.Due), q.PointsEarned, q.Multiplier)
				return nil
			}
			e, err := l.CommitSale(ctx, r)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(w).Encode(e)
			}
			s := e.Sale
			for _, sl := range s.Lines {
				fmt.Fprintf(w, "%3d %-12s %4d × %10s = %10s  paid %10s  points %d\n", sl.LineNo, sl.SKU, sl.Qty, entry.FormatFen(sl.UnitPrice), entry.FormatFen(sl.Gross), entry.FormatFen(sl.Paid), sl.EarnedPoints)
			}
			fmt.Fprintf(w, "sale %s (receipt %s, tier %s): gross %s  discount %s  coupon %s  redeemed %d points  due %s  stored value %s  points earned %d\n",
				e.ID(), s.ReceiptID, s.Tier, entry.FormatFen(s.Gross), entry.FormatFen(s.Discount), entry.FormatFen(s.CouponValue), s.RedeemPoints, entry.FormatFen(s.Due), entry.FormatFen(s.StoredValue), s.PointsEarned)
			if r.MemberID != "" {
				if v, err := l.Member(r.MemberID); err == nil {
					fmt.Fprintf(w, "member %s (%s): %d points, stored value %s\n", v.Member.ID, v.Member.Tier, v.Points, entry.FormatFen(v.StoredValue))
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&r.MemberID, "member", "", "member id (empty: non-member)")
	f.StringVar(&r.ReceiptID, "receipt", "", "POS receipt id (idempotency key)")
	f.StringArrayVar(&lines, "line", nil, "sku:qty:price[:nd][:ne], price in yuan (repeatable)")
	f.Var(Points(&r.RedeemPoints), "redeem", "points to redeem (whole hundreds)")
	f.StringVar(&r.CouponID, "coupon", "", "coupon id the member holds")
	f.StringVar(&sv, "stored-value", "", "part of the amount due paid from stored value, in yuan")
	f.StringVar(&r.Till, "till", "", "till id (default: the configured till)")
	f.StringVar(&r.Cashier, "cashier", "", "cashier id recorded with the sale")
	f.StringVar(&atString, "at", "", "sale time, RFC 3339 (default: now)")
	f.BoolVar(&r.Offline, "offline", false, "apply the offline redemption cap")
	f.BoolVar(&quote, "quote", false, "price only, write nothing")
	f.BoolVar(&asJSON, "json", false, "print the entry (or quote) as JSON")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the commit")
	return c
}

package hqcli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// Row is one exported transaction. It names the member by id only: card
// numbers never leave the till (and HQ holds only their keyed hashes).
type Row struct {
	Store            string             `json:"store"`
	Till             string             `json:"till"`
	Seq              uint64             `json:"seq"`
	Kind             string             `json:"kind"`
	ReceiptID        string             `json:"receipt_id"`
	SaleReceiptID    string             `json:"sale_receipt_id,omitempty"` // refunds and voids: the sale they reverse
	MemberID         string             `json:"member_id,omitempty"`
	Cashier          string             `json:"cashier,omitempty"`
	TimeUTC          string             `json:"time_utc"`
	TimeLocal        string             `json:"time_local"`
	Lines            []entry.SaleLine   `json:"lines,omitempty"`
	RefundLines      []entry.RefundLine `json:"refund_lines,omitempty"`
	Gross            int64              `json:"gross"`
	Discount         int64              `json:"discount"`
	CouponID         string             `json:"coupon_id,omitempty"`
	CouponValue      int64              `json:"coupon_value"`
	RedeemValue      int64              `json:"redeem_value"`
	Amount           int64              `json:"amount"` // sale: due; refund: money returned; top-up: amount bought
	PointsEarned     int64              `json:"points_earned"`
	PointsRedeemed   int64              `json:"points_redeemed"`
	PointsDelta      int64              `json:"points_delta"`
	StoredValuePaid  int64              `json:"stored_value_paid"`
	StoredValueDelta int64              `json:"stored_value_delta"`
	ProgramVersion   int                `json:"program_version,omitempty"`
	ReceivedAt       string             `json:"received_at"`
}

// RowOf flattens an exported entry.
func RowOf(x wire.ExportedEntry) Row {
	e := x.Entry
	r := Row{Store: e.Store, Till: e.Till, Seq: e.Seq, Kind: string(e.Kind), ReceiptID: e.Key, MemberID: e.MemberID, Cashier: e.Cashier,
		TimeUTC: e.At.UTC().Format(time.RFC3339), TimeLocal: e.Local, PointsDelta: e.PointsDelta, StoredValueDelta: e.StoredValueDelta,
		ProgramVersion: e.ProgramVersion, ReceivedAt: x.ReceivedAt}
	switch {
	case e.Sale != nil:
		s := e.Sale
		r.ReceiptID, r.Lines, r.Gross, r.Discount, r.CouponID, r.CouponValue = s.ReceiptID, s.Lines, s.Gross, s.Discount, s.CouponID, s.CouponValue
		r.RedeemValue, r.Amount, r.PointsEarned, r.PointsRedeemed, r.StoredValuePaid = s.RedeemValue, s.Due, s.PointsEarned, s.RedeemPoints, s.StoredValue
	case e.Refund != nil:
		f := e.Refund
		r.ReceiptID, r.SaleReceiptID, r.RefundLines, r.Amount = f.RefundID, f.SaleKey, f.Lines, f.Amount
		r.PointsEarned, r.PointsRedeemed, r.StoredValuePaid = -f.PointsReversed, -f.PointsRestored, -f.StoredValue
	case e.Void != nil:
		v := e.Void
		r.SaleReceiptID = v.SaleKey
		r.PointsEarned, r.PointsRedeemed, r.StoredValuePaid = -v.PointsReversed, -v.PointsRestored, -v.StoredValue
	case e.TopUp != nil:
		r.ReceiptID, r.Amount = e.TopUp.TopUpID, e.TopUp.Amount
	}
	if r.TimeLocal == "" {
		r.TimeLocal = r.TimeUTC
	}
	return r
}

var csvHeader = []string{"store", "till", "seq", "kind", "receipt_id", "sale_receipt_id", "member_id", "cashier", "time_utc", "time_local",
	"lines", "gross", "discount", "coupon_id", "coupon_value", "redeem_value", "amount", "points_earned", "points_redeemed",
	"points_delta", "stored_value_paid", "stored_value_delta", "program_version", "received_at"}

func (r Row) csv() []string {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	lines := ""
	if len(r.Lines) > 0 {
		b, _ := json.Marshal(r.Lines)
		lines = string(b)
	} else if len(r.RefundLines) > 0 {
		b, _ := json.Marshal(r.RefundLines)
		lines = string(b)
	}
	return []string{r.Store, r.Till, strconv.FormatUint(r.Seq, 10), r.Kind, r.ReceiptID, r.SaleReceiptID, r.MemberID, r.Cashier,
		r.TimeUTC, r.TimeLocal, lines, i(r.Gross), i(r.Discount), r.CouponID, i(r.CouponValue), i(r.RedeemValue), i(r.Amount),
		i(r.PointsEarned), i(r.PointsRedeemed), i(r.PointsDelta), i(r.StoredValuePaid), i(r.StoredValueDelta),
		strconv.Itoa(r.ProgramVersion), r.ReceivedAt}
}

// Export pages through the export feed from cursor and writes every entry
// as JSON lines or CSV; it returns the cursor to resume from next time.
func Export(ctx context.Context, page func(ctx context.Context, cursor string, limit int) (wire.ExportPage, error),
	w io.Writer, format, cursor string, limit int, progress func(n int)) (string, int, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	var cw *csv.Writer
	enc := json.NewEncoder(bw)
	switch format {
	case "csv":
		cw = csv.NewWriter(bw)
		if err := cw.Write(csvHeader); err != nil {
			return cursor, 0, err
		}
	case "jsonl":
	default:
		return cursor, 0, fmt.Errorf("--format %q: use jsonl or csv", format)
	}
	n := 0
	for {
		p, err := page(ctx, cursor, limit)
		if err != nil {
			return cursor, n, err
		}
		for _, x := range p.Entries {
			r := RowOf(x)
			if cw != nil {
				err = cw.Write(r.csv())
			} else {
				err = enc.Encode(r)
			}
			if err != nil {
				return cursor, n, err
			}
		}
		n += len(p.Entries)
		cursor = p.Cursor
		if progress != nil {
			progress(len(p.Entries))
		}
		if !p.More {
			break
		}
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return cursor, n, err
		}
	}
	return cursor, n, bw.Flush()
}

// maxExportPage is the most entries one export page holds.
const maxExportPage = 5000

func exportCmd(f *flags) *cobra.Command {
	var format, out, cursorFile string
	var limit int
	var quiet bool
	c := &cobra.Command{
		Use:   "export",
		Short: "Write synced transactions as JSON lines or CSV",
		Long: `Write every synced entry (sales, refunds, voids, top-ups, enrolments, …) with
store, till, receipt id, member id (never a card number), lines, discounts,
points, stored value, and times in UTC and store-local time.

With --cursor-file the export resumes where the last one stopped and saves
the new position: run it on a schedule to feed HQ systems incrementally.`,
		Example: `  posagent hq export --format jsonl --out all.jsonl
  posagent hq export --format csv --out new.csv --cursor-file export.cursor --url https://hq:8443 --token $HQ_TOKEN`,
		Args: cobra.NoArgs,
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if format != "jsonl" && format != "csv" {
			return fmt.Errorf("--format %q: use jsonl or csv", format)
		}
		// The bound HQ's export API serves (hq.Options.MaxPage): one page is
		// held in memory, so a local export is bounded the same way.
		if limit < 1 || limit > maxExportPage {
			return fmt.Errorf("--limit %d: ask for 1 to %d entries a page", limit, maxExportPage)
		}
		return withOps(f, func(ctx context.Context, o ops) error {
			cursor := ""
			if cursorFile != "" {
				b, err := os.ReadFile(cursorFile)
				if err != nil && !os.IsNotExist(err) {
					return err
				}
				cursor = strings.TrimSpace(string(b))
			}
			var w io.Writer = f.out
			if out != "" && out != "-" {
				file, err := os.Create(out)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			var progress func(int)
			if !quiet {
				total := int64(-1)
				if cursor == "" {
					if t, err := o.totals(ctx); err == nil {
						total = t.Chain.Entries
					}
				}
				bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(f.errw), progressbar.OptionSetDescription("export"),
					progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
				defer bar.Finish()
				progress = func(n int) { _ = bar.Add(n) }
			}
			next, n, err := Export(ctx, o.export, w, format, cursor, limit, progress)
			if err != nil {
				return err
			}
			if cursorFile != "" {
				if err := os.WriteFile(cursorFile, []byte(next+"\n"), 0o600); err != nil {
					return err
				}
			}
			fmt.Fprintf(f.errw, "exported %d entries\n", n)
			return nil
		})(cmd, args)
	}
	c.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	c.Flags().StringVarP(&out, "out", "o", "", "output file (default stdout)")
	c.Flags().StringVar(&cursorFile, "cursor-file", "", "resume from and save the position in this file")
	c.Flags().IntVar(&limit, "limit", 1000, "entries per page, 1 to 5000")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return c
}

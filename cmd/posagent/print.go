package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

func printQuote(w io.Writer, q loyalty.Quote) {
	tier := q.Tier
	if tier == "" {
		tier = "non-member"
	}
	fmt.Fprintf(w, "Quote (program v%d, tier %s)\n", q.ProgramVersion, tier)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "line\tsku\tqty\tunit\tgross\tdiscount\tcoupon\tredeem\tpaid\tpoints\t")
	for _, l := range q.Lines {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", l.LineNo, l.SKU, l.Qty, fen(l.UnitPrice),
			fen(l.Gross), fen(l.Discount), fen(l.CouponShare), fen(l.RedeemShare), fen(l.Paid), l.EarnedPoints)
	}
	tw.Flush()
	fmt.Fprintf(w, "gross %s  discount %s  coupon %s  redeemed %d pts (%s)\n",
		fen(q.Gross), fen(q.Discount), fen(q.CouponValue), q.RedeemPoints, fen(q.RedeemValue))
	fmt.Fprintf(w, "DUE %s   points earned %d (base %s ×%d)\n", fen(q.Due), q.PointsEarned, fen(q.EarnBase), q.Multiplier)
	printReasons(w, q.Reasons)
}

func printReasons(w io.Writer, rs []string) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "why:")
	for _, r := range rs {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}

// printEntry describes a committed ledger entry.
func printEntry(w io.Writer, e *entry.Entry) {
	fmt.Fprintf(w, "%s %s (entry %s, %s)\n", e.Kind, e.Key, e.ID(), e.Local)
	if e.MemberID != "" {
		fmt.Fprintf(w, "  member %s: points %+d, stored value %s\n", e.MemberID, e.PointsDelta, signedFen(e.StoredValueDelta))
	}
	switch {
	case e.Sale != nil:
		s := e.Sale
		fmt.Fprintf(w, "  %d line(s), gross %s, discount %s, coupon %s, redeemed %d pts\n",
			len(s.Lines), fen(s.Gross), fen(s.Discount), fen(s.CouponValue), s.RedeemPoints)
		fmt.Fprintf(w, "  DUE %s (stored value %s), points earned %d", fen(s.Due), fen(s.StoredValue), s.PointsEarned)
		if s.LotExpiresAt != "" {
			fmt.Fprintf(w, ", valid until %s", s.LotExpiresAt)
		}
		fmt.Fprintln(w)
	case e.Refund != nil:
		r := e.Refund
		full := ""
		if r.Full {
			full = " (full)"
		}
		fmt.Fprintf(w, "  refund of receipt %s%s: %s back (stored value %s), points reversed %d, restored %d\n",
			r.SaleKey, full, fen(r.Amount), fen(r.StoredValue), r.PointsReversed, r.PointsRestored)
		if r.CouponRestored != "" {
			fmt.Fprintf(w, "  coupon %s restored\n", r.CouponRestored)
		}
		if r.NegativeAfter {
			fmt.Fprintln(w, "  NOTE: the member's points balance is now below zero")
		}
	case e.Void != nil:
		v := e.Void
		fmt.Fprintf(w, "  void of receipt %s: stored value %s back, points reversed %d, restored %d\n",
			v.SaleKey, fen(v.StoredValue), v.PointsReversed, v.PointsRestored)
	case e.TopUp != nil:
		fmt.Fprintf(w, "  top-up %s + bonus %s\n", fen(e.TopUp.Amount), fen(e.TopUp.Bonus))
	case e.Enrol != nil:
		fmt.Fprintf(w, "  enrolled %s (%s), tier %s\n", e.Enrol.Member.ID, e.Enrol.Member.Name, e.Enrol.Member.Tier)
	case e.Coupon != nil:
		c := e.Coupon.Coupon
		fmt.Fprintf(w, "  coupon %s %q: %s off from %s, until %s (%s)\n", c.ID, c.Name, fen(c.Value), fen(c.Threshold), c.ValidUntil, e.Coupon.Reason)
	case e.Points != nil:
		fmt.Fprintf(w, "  points %+d (%s)\n", e.Points.Points, e.Points.Reason)
	case e.Tier != nil:
		fmt.Fprintf(w, "  tier %s → %s (%s)\n", e.Tier.From, e.Tier.To, e.Tier.Reason)
	}
}

func signedFen(n int64) string {
	if n > 0 {
		return "+" + fen(n)
	}
	return fen(n)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// printFlat prints a JSON object as indented "key: value" lines, keys sorted.
func printFlat(w io.Writer, indent string, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := m[k].(type) {
		case map[string]any:
			fmt.Fprintf(w, "%s%s:\n", indent, k)
			printFlat(w, indent+"  ", v)
		case []any:
			fmt.Fprintf(w, "%s%s:\n", indent, k)
			for _, it := range v {
				if mm, ok := it.(map[string]any); ok {
					fmt.Fprintf(w, "%s  -\n", indent)
					printFlat(w, indent+"    ", mm)
				} else {
					fmt.Fprintf(w, "%s  - %v\n", indent, it)
				}
			}
		case nil:
			fmt.Fprintf(w, "%s%s: -\n", indent, k)
		case float64:
			// JSON numbers: counts and fen are integers; print them without exponent.
			fmt.Fprintf(w, "%s%s: %s\n", indent, k, strconv.FormatFloat(v, 'f', -1, 64))
		default:
			fmt.Fprintf(w, "%s%s: %v\n", indent, k, v)
		}
	}
}

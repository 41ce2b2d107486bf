package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"posagent/agent/api"
	"posagent/ledger/ledgercli"
	"posagent/ledger/loyalty"

	"posagent/ledger/entry"
)

// Paths of the agent's local API used by the CLI (see docs/api.md).
const (
	pathMembers  = "/v1/members"
	pathLookup   = "/v1/members/lookup"
	pathQuote    = "/v1/quote"
	pathSales    = "/v1/sales"
	pathRefunds  = "/v1/refunds"
	pathVoids    = "/v1/voids"
	pathTopUps   = "/v1/topups"
	pathSyncStat = "/v1/sync/status"
	pathSyncNow  = "/v1/sync/now"
)

func apiCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newMemberCmd(g), newQuoteCmd(g), newSaleCmd(g), newRefundCmd(g),
		newVoidCmd(g), newTopUpCmd(g), newSyncCmd(g), newCashierCmd(g),
	}
}

// ---- wire shapes ----

type basketFlags struct {
	member  string
	card    string
	coupon  string
	redeem  int64
	lines   []string
	cashier string
	till    string
}

func (b *basketFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&b.lines, "line", "l", nil,
		"a basket line sku:qty:price[:nd][:ne], price in yuan (12.50); nd: not discountable, ne: earns no points; repeat for more lines")
	cmd.Flags().StringVarP(&b.member, "member", "m", "", "member id")
	cmd.Flags().StringVar(&b.card, "card", "", "member card number (looked up first, instead of --member)")
	cmd.Flags().StringVar(&b.coupon, "coupon", "", "coupon id to apply")
	cmd.Flags().Var(ledgercli.Points(&b.redeem), "redeem", "points to redeem (whole hundreds)")
	cmd.Flags().StringVar(&b.cashier, "cashier", "", "cashier id recorded with the sale")
	cmd.Flags().StringVar(&b.till, "till", "", "till id (default: the agent's)")
}

// parseLine reads sku:qty:price[:nd][:ne] with the price in yuan, the same
// grammar as `posagent ledger sale`.
func parseLine(s string) (api.Line, error) {
	l, err := ledgercli.ParseLine(0, s)
	if err != nil {
		return api.Line{}, fmt.Errorf("--%w", err)
	}
	out := api.Line{SKU: l.SKU, Qty: l.Qty, UnitPrice: l.UnitPrice}
	if !l.Discountable {
		out.Discountable = new(false)
	}
	if !l.EarnsPoints {
		out.EarnsPoints = new(false)
	}
	return out, nil
}

func (b *basketFlags) basket() ([]api.Line, error) {
	if len(b.lines) == 0 {
		return nil, fmt.Errorf("no lines: add at least one --line sku:qty:price")
	}
	out := make([]api.Line, 0, len(b.lines))
	for _, s := range b.lines {
		l, err := parseLine(s)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func printMember(w io.Writer, m api.MemberSummary) {
	tier := m.Tier
	if m.TierNameEN != "" || m.TierNameZH != "" {
		tier = fmt.Sprintf("%s (%s %s)", m.Tier, m.TierNameZH, m.TierNameEN)
	}
	fmt.Fprintf(w, "Member %s  %s\n", m.Member.ID, m.Member.Name)
	fmt.Fprintf(w, "  tier          %s\n", orDash(tier))
	fmt.Fprintf(w, "  points        %d (confirmed by HQ %d, pending %d)\n", m.Points, m.PointsConfirmed, m.PointsPending)
	if m.Negative {
		fmt.Fprintln(w, "                NOTE: below zero after a refund; the member owes points")
	}
	fmt.Fprintf(w, "  stored value  %s\n", fen(m.StoredValue))
	fmt.Fprintf(w, "  state         %s\n", orDash(m.State))
	fmt.Fprintf(w, "  mobile        %s\n", orDash(m.MaskedMobile))
	if m.LastSale != "" {
		fmt.Fprintf(w, "  last sale     %s\n", m.LastSale)
	}
	if len(m.Coupons) == 0 {
		fmt.Fprintln(w, "  coupons       none")
	}
	for i, c := range m.Coupons {
		label := "  coupons       "
		if i > 0 {
			label = "                "
		}
		th := "no threshold"
		if c.Threshold > 0 {
			th = "from " + fen(c.Threshold)
		}
		fmt.Fprintf(w, "%s%s %q: %s off %s, until %s\n", label, c.ID, c.Name, fen(c.Value), th, c.ValidUntil)
	}
}

func newMemberCmd(g *globals) *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Look members up and enrol them (through the running agent)",
		Example: `  posagent member lookup --card 6222020200112233
  posagent member enrol --name "Li Lei" --mobile 13812341234 --card 6222020200112233`,
	}
	af.register(cmd)

	var q api.LookupRequest
	lookup := &cobra.Command{
		Use:   "lookup",
		Short: "Show a member: tier, points, stored value, coupons, state",
		Example: `  posagent member lookup --card 6222020200112233
  posagent member lookup --id M000123
  posagent member lookup --mobile 13812341234 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, s := range []string{q.MemberID, q.Card, q.CardHash, q.Mobile} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("name the member with exactly one of --id, --card, --card-hash or --mobile")
			}
			return callAgent(cmd, g, &af, http.MethodPost, pathLookup, q, func(w io.Writer, m *api.MemberSummary) {
				printMember(w, *m)
			})
		},
	}
	lookup.Flags().StringVar(&q.MemberID, "id", "", "member id")
	lookup.Flags().StringVar(&q.Card, "card", "", "card number or member code as printed (the agent hashes it)")
	lookup.Flags().StringVar(&q.CardHash, "card-hash", "", "card token hash (from a card_unknown event)")
	lookup.Flags().StringVar(&q.Mobile, "mobile", "", "mobile number")

	var er api.EnrolRequest
	var referrer string
	enrol := &cobra.Command{
		Use:   "enrol",
		Short: "Enrol a new member at this till (welcome coupon, optional referrer)",
		Example: `  posagent member enrol --name "Li Lei" --mobile 13812341234 --card 6222020200112233
  posagent member enrol --name "Han Meimei" --mobile 13900001111 --birthday 02-29 --referrer M000123 --id till1-enrol-0042`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(er.Name) == "" || er.Mobile == "" {
				return fmt.Errorf("--name and --mobile are required")
			}
			if er.EnrolID == "" {
				// Each run is a new enrolment; pass --id to make a retry safe.
				er.EnrolID = "cli-" + randomID()
			}
			if referrer != "" {
				er.Referrer = &api.LookupRequest{MemberID: referrer}
			}
			return callAgent(cmd, g, &af, http.MethodPost, pathMembers, er, func(w io.Writer, res *api.EnrolResponse) {
				printMember(w, res.Member)
				for _, e := range res.Entries {
					printEntry(w, e)
				}
			})
		},
	}
	enrol.Flags().StringVar(&er.Name, "name", "", "member's name (required)")
	enrol.Flags().StringVar(&er.Mobile, "mobile", "", "mobile number (required)")
	enrol.Flags().StringVar(&er.Birthday, "birthday", "", "birthday MM-DD or YYYY-MM-DD")
	enrol.Flags().StringVar(&er.Card, "card", "", "card number or member code to link (hashed by the agent)")
	enrol.Flags().StringVar(&referrer, "referrer", "", "member id of the referrer")
	enrol.Flags().StringVar(&er.EnrolID, "id", "", "enrolment id: the same id enrols once (default: a new one)")
	enrol.Flags().StringVar(&er.Cashier, "cashier", "", "cashier id")
	enrol.Flags().StringVar(&er.Till, "till", "", "till id (default: the agent's)")
	cmd.AddCommand(lookup, enrol)
	return cmd
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (b *basketFlags) request() (api.SaleRequest, error) {
	lines, err := b.basket()
	if err != nil {
		return api.SaleRequest{}, err
	}
	if b.member != "" && b.card != "" {
		return api.SaleRequest{}, fmt.Errorf("give --member or --card, not both")
	}
	if b.redeem < 0 {
		return api.SaleRequest{}, fmt.Errorf("--redeem must not be negative")
	}
	return api.SaleRequest{Till: b.till, MemberID: b.member, Card: b.card, Cashier: b.cashier,
		CouponID: b.coupon, Lines: lines, RedeemPoints: b.redeem}, nil
}

func newQuoteCmd(g *globals) *cobra.Command {
	var af apiFlags
	var b basketFlags
	cmd := &cobra.Command{
		Use:   "quote",
		Short: "Price a basket for a member without committing anything",
		Example: `  posagent quote --member M000123 --line 6901234567890:2:12.50 --line 6909999000011:1:30:nd
  posagent quote --card 6222020200112233 --line A1:1:100.00 --redeem 500 --coupon C-7f3a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := b.request()
			if err != nil {
				return err
			}
			return callAgent(cmd, g, &af, http.MethodPost, pathQuote, req, func(w io.Writer, q *loyalty.Quote) {
				printQuote(w, *q)
			})
		},
	}
	af.register(cmd)
	b.register(cmd)
	return cmd
}

func newSaleCmd(g *globals) *cobra.Command {
	var af apiFlags
	var b basketFlags
	var receipt, stored string
	cmd := &cobra.Command{
		Use:   "sale",
		Short: "Commit a sale keyed by its receipt id (committing the same receipt again changes nothing)",
		Example: `  posagent sale --receipt R-0001 --member M000123 --line 6901234567890:2:12.50
  posagent sale --receipt R-0002 --card 6222020200112233 --line A1:1:100.00 --redeem 1000 --stored-value 50.00`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if receipt == "" {
				return fmt.Errorf("--receipt is required: it is the POS receipt id that makes the sale idempotent")
			}
			req, err := b.request()
			if err != nil {
				return err
			}
			req.ReceiptID = receipt
			if stored != "" {
				if req.StoredValue, err = entry.ParseYuan(stored); err != nil {
					return fmt.Errorf("--stored-value: %w", err)
				}
			}
			return postEntry(cmd, g, &af, pathSales, req)
		},
	}
	af.register(cmd)
	b.register(cmd)
	cmd.Flags().StringVarP(&receipt, "receipt", "r", "", "POS receipt id (required)")
	cmd.Flags().StringVar(&stored, "stored-value", "", "part of the amount due paid from stored value, in yuan (50.00)")
	return cmd
}

// postEntry sends a mutating request whose answer is a ledger entry.
func postEntry(cmd *cobra.Command, g *globals, af *apiFlags, path string, body any) error {
	return callAgent(cmd, g, af, http.MethodPost, path, body, printEntry)
}

// callAgent sends body to the running agent and prints its answer: as the
// agent sent it with --json, else through show.
func callAgent[T any](cmd *cobra.Command, g *globals, af *apiFlags, method, path string, body any, show func(io.Writer, *T)) error {
	c, err := g.client(af)
	if err != nil {
		return err
	}
	var v T
	raw, err := c.call(cmd.Context(), method, path, nil, body, &v)
	if err != nil {
		return err
	}
	if af.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	show(cmd.OutOrStdout(), &v)
	return nil
}

func newRefundCmd(g *globals) *cobra.Command {
	var af apiFlags
	var r api.RefundRequest
	var lines []string
	cmd := &cobra.Command{
		Use:   "refund",
		Short: "Refund a sale, partly (--line lineNo:qty) or fully (--full)",
		Example: `  posagent refund --receipt R-0001 --id RF-0001 --line 1:1
  posagent refund --receipt R-0002 --id RF-0002 --full`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if r.ReceiptID == "" || r.RefundID == "" {
				return fmt.Errorf("--receipt (the sale) and --id (this refund's id, for idempotency) are required")
			}
			if r.Full == (len(lines) > 0) {
				return fmt.Errorf("give either --full or one or more --line lineNo:qty")
			}
			for _, s := range lines {
				no, qty, ok := strings.Cut(s, ":")
				if !ok {
					return fmt.Errorf("--line %q: want lineNo:qty with both above 0, e.g. 1:2", s)
				}
				n, err := ledgercli.ParseCount("line number", no, loyalty.MaxLines)
				if err != nil {
					return fmt.Errorf("--line %q: %v", s, err)
				}
				q, err := ledgercli.ParseCount("quantity", qty, loyalty.MaxQty)
				if err != nil {
					return fmt.Errorf("--line %q: %v", s, err)
				}
				r.Lines = append(r.Lines, api.RefundItem{LineNo: int(n), Qty: q})
			}
			return postEntry(cmd, g, &af, pathRefunds, r)
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&r.ReceiptID, "receipt", "r", "", "receipt id of the sale to refund")
	cmd.Flags().StringVar(&r.RefundID, "id", "", "refund id (the same id refunds once)")
	cmd.Flags().StringArrayVarP(&lines, "line", "l", nil, "sale line and quantity to refund, lineNo:qty (repeat)")
	cmd.Flags().BoolVar(&r.Full, "full", false, "refund the whole sale")
	cmd.Flags().StringVar(&r.Cashier, "cashier", "", "cashier id")
	cmd.Flags().StringVar(&r.Till, "till", "", "till id (default: the agent's)")
	return cmd
}

func newVoidCmd(g *globals) *cobra.Command {
	var af apiFlags
	var v api.VoidRequest
	cmd := &cobra.Command{
		Use:     "void",
		Short:   "Void a whole sale (reversed like a full refund)",
		Example: `  posagent void --receipt R-0001 --reason "wrong member"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v.ReceiptID == "" {
				return fmt.Errorf("--receipt is required")
			}
			return postEntry(cmd, g, &af, pathVoids, v)
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&v.ReceiptID, "receipt", "r", "", "receipt id of the sale to void")
	cmd.Flags().StringVar(&v.Reason, "reason", "", "why")
	cmd.Flags().StringVar(&v.Cashier, "cashier", "", "cashier id")
	cmd.Flags().StringVar(&v.Till, "till", "", "till id (default: the agent's)")
	return cmd
}

func newTopUpCmd(g *globals) *cobra.Command {
	var af apiFlags
	var t api.TopUpRequest
	var amount string
	cmd := &cobra.Command{
		Use:   "topup",
		Short: "Add stored value to a member's card (the program's bonus applies)",
		Example: `  posagent topup --member M000123 --amount 1000.00 --id TU-0001
  posagent topup --member M000123 --amount 100000 --id TU-0002   # ¥100,000: the program's top-up bonus applies`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.MemberID == "" || t.TopUpID == "" || amount == "" {
				return fmt.Errorf("--member, --amount and --id (the top-up's id, for idempotency) are required")
			}
			var err error
			if t.Amount, err = entry.ParseYuan(amount); err != nil || t.Amount == 0 {
				return fmt.Errorf("--amount: %v", orZero(err))
			}
			return postEntry(cmd, g, &af, pathTopUps, t)
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&t.MemberID, "member", "m", "", "member id")
	cmd.Flags().StringVar(&amount, "amount", "", "amount paid in, in yuan (1000.00)")
	cmd.Flags().StringVar(&t.TopUpID, "id", "", "top-up id (the same id tops up once)")
	cmd.Flags().StringVar(&t.Cashier, "cashier", "", "cashier id")
	cmd.Flags().StringVar(&t.Till, "till", "", "till id (default: the agent's)")
	return cmd
}

func orZero(err error) string {
	if err != nil {
		return err.Error()
	}
	return "must be above 0"
}

func newSyncCmd(g *globals) *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "HQ sync state and a manual sync (through the running agent)",
		Example: `  posagent sync status
  posagent sync now`,
	}
	af.register(cmd)
	status := &cobra.Command{
		Use:     "status",
		Short:   "Show the outbox backlog, the last upload and HQ reachability",
		Example: `  posagent sync status --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return syncCall(cmd, g, &af, http.MethodGet, pathSyncStat)
		},
	}
	now := &cobra.Command{
		Use:     "now",
		Short:   "Upload the outbox and pull HQ changes now, and wait for the result",
		Example: `  posagent sync now`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return syncCall(cmd, g, &af, http.MethodPost, pathSyncNow)
		},
	}
	cmd.AddCommand(status, now)
	return cmd
}

func syncCall(cmd *cobra.Command, g *globals, af *apiFlags, method, path string) error {
	err := callAgent(cmd, g, af, method, path, nil, func(w io.Writer, st *map[string]any) {
		printFlat(w, "", *st)
	})
	if ae, ok := err.(*apiError); ok && ae.Status == http.StatusNotFound {
		return fmt.Errorf("this agent does not serve %s (%v)", path, ae)
	}
	return err
}

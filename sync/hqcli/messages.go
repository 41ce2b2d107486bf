package hqcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/sync/hq"
)

// messageOps are the outbox and consent commands, on the storage or
// through a running HQ.
type messageOps interface {
	messages(ctx context.Context, f hq.OutboxFilter) ([]hq.OutboxMessage, error)
	retryMessages(ctx context.Context, r hq.MessageRetryRequest) (hq.MessageRetryResult, error)
	consent(ctx context.Context, member string, r hq.ConsentRequest) (hq.Consent, error)
}

var (
	_ messageOps = (*local)(nil)
	_ messageOps = (*remote)(nil)
)

// On the storage the operator holds the data itself: mobiles unmasked.
func (l *local) messages(ctx context.Context, f hq.OutboxFilter) ([]hq.OutboxMessage, error) {
	return l.srv.OutboxMessages(ctx, f, true)
}
func (l *local) retryMessages(ctx context.Context, r hq.MessageRetryRequest) (hq.MessageRetryResult, error) {
	return l.srv.RetryMessages(ctx, r)
}
func (l *local) consent(ctx context.Context, member string, r hq.ConsentRequest) (hq.Consent, error) {
	return l.srv.RecordConsent(ctx, member, r)
}

func (r *remote) messages(ctx context.Context, f hq.OutboxFilter) ([]hq.OutboxMessage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Member != "" {
		q.Set("member", f.Member)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []hq.OutboxMessage
	return out, r.call(ctx, "GET", "/admin/messages?"+q.Encode(), nil, &out)
}
func (r *remote) retryMessages(ctx context.Context, req hq.MessageRetryRequest) (hq.MessageRetryResult, error) {
	body, _ := json.Marshal(req)
	var out hq.MessageRetryResult
	return out, r.call(ctx, "POST", "/admin/messages/retry", body, &out)
}
func (r *remote) consent(ctx context.Context, member string, req hq.ConsentRequest) (hq.Consent, error) {
	body, _ := json.Marshal(req)
	var out hq.Consent
	return out, r.call(ctx, "POST", "/admin/members/"+url.PathEscape(member)+"/consent", body, &out)
}

func withMessageOps(f *flags, fn func(ctx context.Context, o messageOps) error) func(*cobra.Command, []string) error {
	return withOps(f, func(ctx context.Context, o ops) error {
		mo, ok := o.(messageOps)
		if !ok {
			return errors.New("this HQ connection keeps no message outbox")
		}
		return fn(ctx, mo)
	})
}

func messagesCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:   "messages",
		Short: "Member messages owed to the chain's gateway: list them, send dead ones again",
		Long: `The outbox holds the messages HQ owes members (after a sale, before a
birthday, points expiring, a recall gift, a tier upgrade) and how each one
went: pending, sent, dead (given up after the gateway refused it or failed
too often) or suppressed (the member withdrew consent before it went out).
hq serve --gateway-url delivers them; see docs/messages.md.`,
		Example: `  posagent hq messages list --dead
  posagent hq messages list --member M000123
  posagent hq messages retry birthday/M000123/2027
  posagent hq messages retry --all-dead --url https://hq:8443 --token $HQ_TOKEN`,
	}
	var dead, asJSON bool
	var member, status string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the newest messages (--dead: only dead ones)",
		Example: `  posagent hq messages list --dead
  posagent hq messages list --member M000123 --json`,
		Args: cobra.NoArgs,
		RunE: withMessageOps(f, func(ctx context.Context, o messageOps) error {
			flt := hq.OutboxFilter{Status: status, Member: member, Limit: limit}
			if dead {
				if status != "" && status != hq.MsgDead {
					return errors.New("--dead lists dead messages; leave out --status")
				}
				flt.Status = hq.MsgDead
			}
			ms, err := o.messages(ctx, flt)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(f.out)
				enc.SetIndent("", "  ")
				return enc.Encode(ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(f.out, "no messages")
				return nil
			}
			tw := tabwriter.NewWriter(f.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tMEMBER\tSTORE\tSTATUS\tATTEMPTS\tDUE / DONE (UTC)\tLAST ERROR")
			for _, m := range ms {
				when := m.DueAt
				if !m.DoneAt.IsZero() {
					when = m.DoneAt
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Kind, m.Member, m.Store, m.Status, m.Attempts,
					when.UTC().Format(time.DateTime), oneLine(m.LastError, 60))
			}
			return tw.Flush()
		}),
	}
	list.Flags().BoolVar(&dead, "dead", false, "only dead messages (hq messages retry sends them again)")
	list.Flags().StringVar(&member, "member", "", "only this member's messages")
	list.Flags().StringVar(&status, "status", "", "only pending, sent, dead or suppressed ones")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many, the newest")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the text and the mobile)")

	var allDead bool
	retry := &cobra.Command{
		Use:   "retry ID...|--all-dead",
		Short: "Put dead messages back in the outbox, due at once with their attempts reset",
		Example: `  posagent hq messages retry birthday/M000123/2027
  posagent hq messages retry --all-dead`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if allDead == (len(args) > 0) {
				return errors.New("name the dead messages to retry (see: hq messages list --dead), or --all-dead")
			}
			return withMessageOps(f, func(ctx context.Context, o messageOps) error {
				res, err := o.retryMessages(ctx, hq.MessageRetryRequest{IDs: args, AllDead: allDead})
				if err != nil {
					return err
				}
				fmt.Fprintf(f.out, "%d message(s) back in the outbox\n", len(res.Retried))
				if len(res.NotFound) > 0 {
					return fmt.Errorf("not dead or unknown: %s (see: hq messages list --dead)", strings.Join(res.NotFound, ", "))
				}
				return nil
			})(cmd, args)
		},
	}
	retry.Flags().BoolVar(&allDead, "all-dead", false, "every dead message")
	c.AddCommand(list, retry, messageScanCmd(f))
	return c
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// withConsent adds consent and opt-out to the members command (also
// reachable as "member").
func withConsent(f *flags, c *cobra.Command) *cobra.Command {
	c.Aliases = append(c.Aliases, "member")
	var at, source string
	var withdraw bool
	record := func(optOut bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			req := hq.ConsentRequest{Granted: !optOut && !withdraw, OptOut: optOut, Source: source}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at %q: want RFC 3339, e.g. 2026-03-10T09:30:00+08:00", at)
				}
				req.At = t
			}
			if req.Source == "" {
				who, err := osUser()
				if err != nil {
					who = "cli"
				}
				req.Source = "hq:" + who
			}
			return withMessageOps(f, func(ctx context.Context, o messageOps) error {
				for _, m := range args {
					cons, err := o.consent(ctx, m, req)
					if err != nil {
						return fmt.Errorf("member %s: %w", m, err)
					}
					fmt.Fprintf(f.out, "%s: %s since %s (%s)\n", m, cons.Status, cons.At.UTC().Format(time.RFC3339), cons.Source)
				}
				return nil
			})(cmd, args)
		}
	}
	consent := &cobra.Command{
		Use:   "consent MEMBER...",
		Short: "Record that members agreed to messages (--withdraw: took it back)",
		Long: `A member gets messages only with consent recorded and no later opt-out or
withdrawal. Each change is kept with its time and source; the latest by time
stands, so a change reported late does not undo a newer one.`,
		Example: `  posagent hq members consent M000123 --at 2026-03-10T09:30:00+08:00 --source store:S001
  posagent hq members consent M000123 --withdraw`,
		Args: cobra.MinimumNArgs(1),
		RunE: record(false),
	}
	consent.Flags().BoolVar(&withdraw, "withdraw", false, "record that consent was withdrawn")
	optOut := &cobra.Command{
		Use:     "opt-out MEMBER...",
		Short:   "Record that members opted out of messages",
		Example: `  posagent hq members opt-out M000123 --source "phone call"`,
		Args:    cobra.MinimumNArgs(1),
		RunE:    record(true),
	}
	for _, sc := range []*cobra.Command{consent, optOut} {
		sc.Flags().StringVar(&at, "at", "", "when the member decided, RFC 3339 (default: now)")
		sc.Flags().StringVar(&source, "source", "", "where it was given (default: hq:<user>)")
	}
	c.AddCommand(consent, optOut)
	return c
}

// gatewayFlags are hq serve's settings of the message gateway.
type gatewayFlags struct {
	url, secretFile, quiet string
	rate                   float64
	timeout                time.Duration
	maxAttempts            int
}

func addGatewayFlags(c *cobra.Command, g *gatewayFlags) {
	fl := c.Flags()
	fl.StringVar(&g.url, "gateway-url", "", "deliver member messages to the chain's gateway at this URL (none: messages wait in the outbox)")
	fl.StringVar(&g.secretFile, "gateway-secret-file", "", "file holding the secret shared with the gateway "+envNote("HQ_GATEWAY_SECRET"))
	fl.StringVar(&g.quiet, "quiet-hours", "21:00-09:00", "no message goes out in these hours, local to the member's store (off: none)")
	fl.Float64Var(&g.rate, "gateway-rate", 10, "most messages a second this HQ process posts")
	fl.DurationVar(&g.timeout, "gateway-timeout", 10*time.Second, "time one POST to the gateway may take")
	fl.IntVar(&g.maxAttempts, "gateway-max-attempts", 8, "failed tries before a message is dead")
}

// secret reads the gateway secret (none set: nil).
func (g *gatewayFlags) secret() ([]byte, error) {
	if g.secretFile != "" {
		b, err := os.ReadFile(g.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--gateway-secret-file: %w", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	return []byte(os.Getenv("HQ_GATEWAY_SECRET")), nil
}

// startSender starts delivery when a gateway is configured; stop ends it
// and returns once it has stopped (claimed messages handed back).
func (g *gatewayFlags) startSender(ctx context.Context, st hq.Store, zone string, log *slog.Logger) (stop func(), err error) {
	if g.url == "" {
		return func() {}, nil
	}
	secret, err := g.secret()
	if err != nil {
		return nil, err
	}
	quiet, err := hq.ParseQuietHours(g.quiet)
	if err != nil {
		return nil, fmt.Errorf("--quiet-hours: %w", err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("chain time zone %q: %w", zone, err)
	}
	s, err := hq.NewSender(st, hq.SenderConfig{URL: g.url, Secret: secret, Timeout: g.timeout, Rate: g.rate,
		MaxAttempts: g.maxAttempts, Quiet: quiet, ChainZone: loc, Log: log})
	if err != nil {
		return nil, fmt.Errorf("message gateway: %w (set --gateway-secret-file or HQ_GATEWAY_SECRET)", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	log.Info("delivering member messages", "gateway", g.url, "quiet_hours", quiet.String(), "rate", g.rate)
	return func() { cancel(); <-done }, nil
}

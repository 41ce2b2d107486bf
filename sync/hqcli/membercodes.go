package hqcli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/sync/hq"
)

// memberCodeOps manage the member-code keys and list repeats.
type memberCodeOps interface {
	memberCodeRepeats(ctx context.Context, since time.Time) ([]hq.MemberCodeRepeat, error)
}

var (
	_ memberCodeOps = (*local)(nil)
	_ memberCodeOps = (*remote)(nil)
)

func (l *local) memberCodeRepeats(ctx context.Context, since time.Time) ([]hq.MemberCodeRepeat, error) {
	return l.srv.MemberCodeRepeats(ctx, since)
}

func (r *remote) memberCodeRepeats(ctx context.Context, since time.Time) ([]hq.MemberCodeRepeat, error) {
	var out struct {
		Repeats []hq.MemberCodeRepeat `json:"repeats"`
	}
	q := ""
	if !since.IsZero() {
		q = "?since=" + url.QueryEscape(since.Format(time.RFC3339))
	}
	return out.Repeats, r.call(ctx, "GET", "/admin/member-codes/repeats"+q, nil, &out)
}

func memberCodeCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:   "membercode",
		Short: "Member codes of the phone card: signing keys and codes used twice",
		Long: `HQ signs the member codes members show on their phones; tills verify them with
HQ's public keys, which they receive with the member feed (docs/membercode.md).`,
		Example: `  posagent hq membercode rotate --pg postgres://hq@db/hq
  posagent hq membercode repeats --since 2026-03-01T00:00:00+08:00 --url https://hq:8443 --token $HQ_TOKEN`,
	}
	var lead time.Duration
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new signing key: published to the tills now, signing after --lead",
		Long: `Rotate after any suspicion that HQ's storage was read. The new public key goes to
the tills with their next pull; HQ (every HQ process on this storage) keeps signing with the old
key until the new one has been published for --lead (default 2m, four 30-second pulls), so no
till calls a new code foreign. Codes signed with the old key keep working for 75 seconds after
the switch. The command prints when the new key starts signing.`,
		Example: `  posagent hq membercode rotate --pg postgres://hq@db/hq
  posagent hq membercode rotate --lead 10m --db hq.db`,
		Args: cobra.NoArgs,
		RunE: withOps(f, func(ctx context.Context, o ops) error {
			l, ok := o.(*local)
			if !ok {
				return errors.New("rotate works on the storage (--db or --pg), not through --url")
			}
			id, from, err := l.srv.RotateMemberCodeKey(ctx, lead)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.out, "new member-code key %s: sent to tills now, signs codes from %s (in %s); the old key signs until then\n",
				id, from.Format(time.RFC3339), from.Sub(time.Now()).Round(time.Second))
			return nil
		}),
	}
	rotate.Flags().DurationVar(&lead, "lead", 0, "how long the new key is published before it signs (0: 2m)")
	var since string
	repeats := &cobra.Command{
		Use:   "repeats",
		Short: "List member codes used at more than one till (late: accepted offline, for review)",
		Example: `  posagent hq membercode repeats --since 2026-03-01T00:00:00+08:00
  posagent hq membercode repeats --url https://hq:8443 --token $HQ_TOKEN`,
		Args: cobra.NoArgs,
		RunE: withOps(f, func(ctx context.Context, o ops) error {
			var from time.Time
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return fmt.Errorf("--since %q: use an RFC 3339 time such as 2026-03-01T00:00:00+08:00", since)
				}
				from = t
			}
			mo, ok := o.(memberCodeOps)
			if !ok {
				return errors.New("member codes are not available here")
			}
			reps, err := mo.memberCodeRepeats(ctx, from)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(f.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tFIRST\tFIRST SEEN\tAGAIN\tAGAIN SEEN\tLATE")
			for _, r := range reps {
				fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s/%s\t%s\t%v\n", r.Again.Member, r.First.Store, r.First.Till,
					r.First.SeenAt.Format(time.RFC3339), r.Again.Store, r.Again.Till, r.Again.SeenAt.Format(time.RFC3339), r.Again.Late)
			}
			return tw.Flush()
		}),
	}
	repeats.Flags().StringVar(&since, "since", "", "only repeats HQ recorded at or after this time (RFC 3339)")
	c.AddCommand(rotate, repeats)
	return c
}

package hqcli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"

	"posagent/sync/hq"
)

// enrolFlags are hq serve's self-enrolment settings. Secrets come from the
// environment only, read when the command runs (help never prints them).
type enrolFlags struct {
	publicURL, smsURL, proxyHeader string
	smsTimeout, pendingMaxAge      time.Duration
}

func addEnrolFlags(c *cobra.Command, e *enrolFlags) {
	c.Flags().StringVar(&e.publicURL, "public-url", "", "HQ's address as customers' phones reach it, for enrolment QR codes and card links (default: $HQ_PUBLIC_URL)")
	c.Flags().StringVar(&e.smsURL, "sms-url", "", "the chain's SMS gateway endpoint for one-time codes; its shared secret comes from $HQ_SMS_SECRET (default: $HQ_SMS_URL)")
	c.Flags().DurationVar(&e.smsTimeout, "sms-timeout", 5*time.Second, "how long HQ waits for the SMS gateway")
	c.Flags().DurationVar(&e.pendingMaxAge, "enrol-pending-max-age", 24*time.Hour, "sign-ups never confirmed are deleted this long after their code expired (once the mobile's hourly send limit no longer counts them); checked every hour")
	c.Flags().StringVar(&e.proxyHeader, "trusted-proxy-header", "", "header in which a trusted load balancer passes the client address (X-Forwarded-For, X-Real-IP); rate limits count that address")
}

func envOr(v, name string) string {
	if v != "" {
		return v
	}
	return os.Getenv(name)
}

// options are the settings for hq.Options.Enrol; enrolment stays off (the
// pages say so) unless the key and the gateway are both set.
func (e *enrolFlags) options() (hq.EnrolOptions, error) {
	o := hq.EnrolOptions{PublicURL: envOr(e.publicURL, "HQ_PUBLIC_URL"), Key: []byte(os.Getenv("HQ_ENROL_KEY")),
		SMS: hq.SMSGateway{URL: envOr(e.smsURL, "HQ_SMS_URL"), Secret: os.Getenv("HQ_SMS_SECRET"), Timeout: e.smsTimeout}, ProxyHeader: e.proxyHeader,
		PendingMaxAge: e.pendingMaxAge}
	if len(o.Key) > 0 && len(o.Key) < 16 {
		return o, errors.New("HQ_ENROL_KEY must be at least 16 characters (e.g. openssl rand -hex 32)")
	}
	if o.SMS.URL != "" {
		if u, err := url.Parse(o.SMS.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return o, fmt.Errorf("--sms-url %q: give the gateway's http(s) URL", o.SMS.URL)
		}
		if o.SMS.Secret == "" {
			return o, errors.New("--sms-url needs the gateway's shared secret in HQ_SMS_SECRET")
		}
	}
	if e.smsTimeout <= 0 {
		return o, errors.New("--sms-timeout must be above 0")
	}
	if e.pendingMaxAge <= 0 {
		return o, errors.New("--enrol-pending-max-age must be above 0 (e.g. 24h)")
	}
	return o, nil
}

func storeQRCmd(f *flags) *cobra.Command {
	var cashier, referrer, out, public string
	var size int
	c := &cobra.Command{
		Use:   "qr STORE --out FILE.png|FILE.svg",
		Short: "Write a store's self-enrolment QR code and print its URL",
		Long: `Writes the QR code customers scan to join as members: it opens HQ's enrolment
page, and each enrolment made through it is credited to the store (and the
cashier or referring member given). The URL is signed with HQ_ENROL_KEY, the
key hq serve runs with, so the credit cannot be edited; the base URL is
--public-url or HQ_PUBLIC_URL.`,
		Example: `  posagent hq store qr S001 --public-url https://hq.example.com --out s001.png   # key from HQ_ENROL_KEY
  posagent hq store qr S001 --cashier C07 --out c07.svg      # credited to cashier C07
  posagent hq store qr S001 --referrer S001-T1-42 --out ref.png`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE.png or FILE.svg is required")
			}
			u, err := hq.EnrolURL(envOr(public, "HQ_PUBLIC_URL"), []byte(os.Getenv("HQ_ENROL_KEY")),
				hq.EnrolLink{Store: args[0], Cashier: cashier, Referrer: referrer})
			if err != nil {
				return err
			}
			var data []byte
			switch strings.ToLower(filepath.Ext(out)) {
			case ".png":
				if data, err = qrcode.Encode(u, qrcode.Medium, size); err != nil {
					return err
				}
			case ".svg":
				svg, err := hq.QRSVG(u, max(size/40, 4))
				if err != nil {
					return err
				}
				data = []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + svg + "\n")
			default:
				return fmt.Errorf("--out %s: name a .png or .svg file", out)
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return err
			}
			fmt.Fprintln(f.out, u)
			fmt.Fprintf(f.errw, "wrote %s\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&cashier, "cashier", "", "credit enrolments to this cashier")
	c.Flags().StringVar(&referrer, "referrer", "", "credit enrolments to this referring member (referral rewards)")
	c.Flags().StringVarP(&out, "out", "o", "", "file to write: .png or .svg")
	c.Flags().StringVar(&public, "public-url", "", "HQ's address as customers' phones reach it (default: $HQ_PUBLIC_URL)")
	c.Flags().IntVar(&size, "size", 512, "PNG size in pixels")
	return c
}

type cardLinkOps interface {
	cardLink(ctx context.Context, member string, revoke bool) (hq.CardLinkResult, error)
}

func (l *local) cardLink(ctx context.Context, member string, revoke bool) (hq.CardLinkResult, error) {
	if revoke {
		n, err := l.srv.RevokeCardLinks(ctx, member)
		return hq.CardLinkResult{Member: member, Revoked: n}, err
	}
	tok, err := l.srv.IssueCardLink(ctx, member)
	return hq.CardLinkResult{Member: member, Token: tok}, err
}

func (r *remote) cardLink(ctx context.Context, member string, revoke bool) (hq.CardLinkResult, error) {
	var out hq.CardLinkResult
	method := "POST"
	if revoke {
		method = "DELETE"
	}
	return out, r.call(ctx, method, "/admin/members/"+url.PathEscape(member)+"/card-link", nil, &out)
}

func cardLinkCmd(f *flags) *cobra.Command {
	var public string
	c := &cobra.Command{
		Use:   "card-link",
		Short: "Issue or revoke the links to a member's card page",
		Example: `  posagent hq members card-link revoke S001-WEB-7     # every link of the member stops working
  posagent hq members card-link issue S001-WEB-7 --public-url https://hq.example.com`,
	}
	run := func(revoke bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return withOps(f, func(ctx context.Context, o ops) error {
				co, ok := o.(cardLinkOps)
				if !ok {
					return errors.New("card links are managed on the storage (--db, --pg) or through a running HQ (--url)")
				}
				res, err := co.cardLink(ctx, args[0], revoke)
				if err != nil {
					return err
				}
				if revoke {
					fmt.Fprintf(f.out, "revoked %d card link(s) of %s\n", res.Revoked, res.Member)
					return nil
				}
				u := res.URL
				if u == "" || strings.HasPrefix(u, "/") {
					base := strings.TrimRight(envOr(public, "HQ_PUBLIC_URL"), "/")
					u = base + "/m/card/" + res.Token
				}
				fmt.Fprintln(f.out, u)
				fmt.Fprintf(f.errw, "send this link to the member only: it is their card; HQ keeps only its hash\n")
				return nil
			})(cmd, args)
		}
	}
	issue := &cobra.Command{Use: "issue MEMBER", Short: "Make a new card link and print it (earlier ones keep working)",
		Example: "  posagent hq members card-link issue S001-WEB-7 --public-url https://hq.example.com\n  posagent hq members card-link issue S001-WEB-7 --url https://hq:8443 --token $HQ_TOKEN", Args: cobra.ExactArgs(1), RunE: run(false)}
	issue.Flags().StringVar(&public, "public-url", "", "HQ's address as customers' phones reach it (default: $HQ_PUBLIC_URL)")
	revoke := &cobra.Command{Use: "revoke MEMBER", Short: "Make every link to the member's card stop working at once",
		Example: "  posagent hq members card-link revoke S001-WEB-7\n  posagent hq members card-link revoke S001-WEB-7 --url https://hq:8443 --token $HQ_TOKEN", Args: cobra.ExactArgs(1), RunE: run(true)}
	c.AddCommand(issue, revoke)
	return c
}

// Package hqcli is the `hq` command tree: run the HQ server, issue and
// revoke store credentials, export synced transactions, report KPIs, handle
// dead letters, review flagged members, issue recall coupons and publish
// loyalty programs.
package hqcli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"

	"posagent/ledger/entry"
)

type flags struct {
	db, pgURL    string
	url, token   string
	caFile       string
	certFile     string
	keyFile      string
	out          io.Writer
	errw         io.Writer
	storeOptions bolt.Options
	identityFeed bool // serve --member-feed identity
}

// NewCommand returns the `hq` command.
func NewCommand() *cobra.Command {
	f := &flags{}
	root := &cobra.Command{
		Use:   "hq",
		Short: "HQ server for store sync: ingest, balances, export, KPIs",
		Long: `hq runs the HQ side of store sync and administers it.

Storage is an embedded bbolt file (--db, the default hq.db) or PostgreSQL
(--pg URL). Admin commands work on the storage directly, or through a running
HQ with --url and an admin token (--token or HQ_TOKEN); use --url while
"hq serve" holds a bbolt file.`,
		Example: `  posagent hq serve --db /var/lib/hq/hq.db --listen :8443 --tls-cert hq.pem --tls-key hq.key
  posagent hq store add S001 --name "Jing'an" --tz Asia/Shanghai
  posagent hq export --format csv --out sales.csv --url https://hq:8443 --token $HQ_TOKEN
  posagent hq kpi --month 2026-03 --format html --out kpi.html`,
		SilenceUsage: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.db, "db", "hq.db", "bbolt store file")
	// Secrets from the environment are read when a command runs, never made
	// flag defaults: help would print them.
	pf.StringVar(&f.pgURL, "pg", "", "PostgreSQL URL (instead of --db), e.g. postgres://hq@db/hq "+envNote("HQ_PG"))
	pf.StringVar(&f.url, "url", "", "use a running HQ's admin API at this URL instead of the storage")
	pf.StringVar(&f.token, "token", "", "admin token for --url "+envNote("HQ_TOKEN"))
	pf.StringVar(&f.caFile, "ca", "", "CA certificate to trust for --url over TLS")
	pf.StringVar(&f.certFile, "cert", "", "admin client certificate (PEM, URI SAN posagent:admin:<name>) for --url when HQ requires mutual TLS")
	pf.StringVar(&f.keyFile, "key", "", "private key (PEM) of --cert")
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		f.out, f.errw = cmd.OutOrStdout(), cmd.ErrOrStderr()
		if !pf.Lookup("pg").Changed {
			f.pgURL = os.Getenv("HQ_PG")
		}
		if !pf.Lookup("token").Changed {
			f.token = os.Getenv("HQ_TOKEN")
		}
	}
	root.AddCommand(serveCmd(f), storeCmd(f), exportCmd(f), kpiCmd(f), deadLettersCmd(f), couponsCmd(f), withConsent(f, membersCmd(f)), programCmd(f), verifyCmd(f), archiveCmd(f), cashierCmd(f), messagesCmd(f), memberCodeCmd(f))
	return root
}

// envNote says where a secret flag's default comes from and whether it is
// set there, without its value.
func envNote(name string) string {
	if os.Getenv(name) != "" {
		return "(default: $" + name + ", set)"
	}
	return "(default: $" + name + ", not set)"
}

// ParseProgram is the loyalty program check HQ applies on publish.
func ParseProgram(src []byte) (hq.ProgramInfo, error) {
	p, err := loyalty.ParseProgram(src)
	if err != nil {
		return hq.ProgramInfo{}, err
	}
	return hq.ProgramInfo{Version: p.Version, EffectiveFrom: p.EffectiveFrom}, nil
}

func (f *flags) openStore(ctx context.Context) (hq.Store, error) {
	if f.pgURL != "" {
		return pg.Open(ctx, f.pgURL, pg.Options{IdentityFeed: f.identityFeed})
	}
	o := f.storeOptions
	o.IdentityFeed = f.identityFeed
	return bolt.Open(f.db, o)
}

// options takes the KPI settings from the newest published program (or the
// default program): its time zone and life-cycle thresholds.
func options(ctx context.Context, st hq.Store, log *slog.Logger) hq.Options {
	prog := loyalty.DefaultProgram()
	if ps, err := st.Programs(ctx); err == nil && len(ps) > 0 {
		if p, err := loyalty.ParseProgram([]byte(ps[len(ps)-1].Source)); err == nil {
			prog = p
		} else {
			log.Warn("newest published program does not parse; KPI settings from the default program", "version", ps[len(ps)-1].Version, "err", err)
		}
	}
	return hq.Options{Log: log, ParseProgram: ParseProgram, TimeZone: prog.TimeZone,
		AtRiskDays: prog.Life.AtRiskDays, DormantDays: prog.Life.DormantDays}
}

func (f *flags) ops(ctx context.Context) (ops, error) {
	if f.url != "" {
		if f.token == "" {
			return nil, errors.New("--url needs an admin token: --token or HQ_TOKEN (issue one with: hq store add NAME --admin)")
		}
		var tr *http.Transport
		if f.caFile != "" || f.certFile != "" || f.keyFile != "" {
			tc := &tls.Config{MinVersion: tls.VersionTLS12}
			if f.caFile != "" {
				pem, err := os.ReadFile(f.caFile)
				if err != nil {
					return nil, err
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("--ca %s holds no PEM certificate", f.caFile)
				}
				tc.RootCAs = pool
			}
			if (f.certFile == "") != (f.keyFile == "") {
				return nil, errors.New("mutual TLS needs both --cert and --key")
			}
			if f.certFile != "" {
				cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
				if err != nil {
					return nil, fmt.Errorf("--cert %s / --key %s: %w", f.certFile, f.keyFile, err)
				}
				tc.Certificates = []tls.Certificate{cert}
			}
			tr = &http.Transport{TLSClientConfig: tc}
		}
		return newRemote(f.url, f.token, tr), nil
	}
	st, err := f.openStore(ctx)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(f.errw, nil))
	return &local{st: st, srv: hq.NewServer(st, options(ctx, st, log))}, nil
}

func withOps(f *flags, fn func(ctx context.Context, o ops) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		o, err := f.ops(ctx)
		if err != nil {
			return err
		}
		defer o.close()
		return fn(ctx, o)
	}
}

func serveCmd(f *flags) *cobra.Command {
	var listen, cert, key, clientCA, addrFile string
	var maxInFlight, maxPerStore int
	var bodyTimeout time.Duration
	var memberFeed string
	var fraudSet hq.FraudSettings
	var enrolSet enrolFlags
	var gw gatewayFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the HQ server",
		Long: `Run the HQ HTTP API for stores (/v1/batches, /v1/changes), HQ systems
(/v1/export) and admins (/admin/..., /kpi, /healthz) until SIGINT/SIGTERM.
The admin token can also be bootstrapped from the HQ_ADMIN_TOKEN environment
variable. With --tls-cert/--tls-key HQ speaks TLS; with --client-ca as well,
every store and admin request must come with a client certificate signed by
that CA that names its token's holder: a store's certificate has the URI SAN
posagent:store:<id> (or, without posagent: URI SANs, Subject CN=<id>); an
admin's has posagent:admin:<name>. Otherwise HQ answers 403.`,
		Example: `  posagent hq serve --db hq.db --listen 127.0.0.1:8080
  posagent hq serve --pg postgres://hq@127.0.0.1/hq --listen :8443 --tls-cert hq.pem --tls-key hq.key --client-ca stores-ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if bodyTimeout <= 0 || maxPerStore <= 0 || maxInFlight <= 0 {
				return errors.New("--body-timeout, --max-per-store and --max-inflight must be above 0")
			}
			switch memberFeed {
			case "all", "identity":
				f.identityFeed = memberFeed == "identity"
			default:
				return fmt.Errorf("--member-feed %q: say all or identity", memberFeed)
			}
			if err := fraudSet.Validate(); err != nil {
				return fmt.Errorf("fraud thresholds (--fraud-*): %w", err)
			}
			log := slog.New(slog.NewJSONHandler(f.errw, nil))
			st, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			o := options(ctx, st, log)
			o.AdminToken = os.Getenv("HQ_ADMIN_TOKEN")
			o.MaxInFlight = maxInFlight
			o.MaxPerCredential = maxPerStore
			o.BodyTimeout = bodyTimeout
			o.RequireClientCert = clientCA != ""
			o.Fraud = fraudSet
			if o.Enrol, err = enrolSet.options(); err != nil {
				return err
			}
			if o.GatewaySecret, err = gw.secret(); err != nil {
				return err
			}
			stopSender, err := gw.startSender(ctx, st, o.TimeZone, log)
			if err != nil {
				return err
			}
			defer stopSender()
			defer startMessageDays(ctx, st, log)() // birthday, expiry and recall reminders, once a day
			srv := hq.NewServer(st, o)
			defer inBackground(ctx, srv.RunPendingPurge)() // sign-ups never confirmed
			// Uploads set their own body deadline; ReadTimeout bounds every
			// other request's body the same way.
			hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10*time.Second + bodyTimeout,
				IdleTimeout: 2 * time.Minute,
				ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn)} // refused TLS handshakes among them
			scheme := "http"
			if cert != "" || key != "" {
				if hs.TLSConfig, err = hq.TLSConfig(cert, key, clientCA); err != nil {
					return err
				}
				scheme = "https"
			} else if clientCA != "" {
				return errors.New("--client-ca needs --tls-cert and --tls-key")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			if hs.TLSConfig != nil {
				ln = tls.NewListener(ln, hs.TLSConfig)
			}
			addr := scheme + "://" + ln.Addr().String()
			if addrFile != "" {
				if err := os.WriteFile(addrFile, []byte(addr+"\n"), 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(f.out, "hq listening on %s\n", addr)
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return hs.Shutdown(sctx)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	c.Flags().StringVar(&cert, "tls-cert", "", "TLS certificate (PEM)")
	c.Flags().StringVar(&key, "tls-key", "", "TLS private key (PEM)")
	c.Flags().StringVar(&clientCA, "client-ca", "", "require client certificates signed by this CA that name the token's store or admin (mutual TLS)")
	c.Flags().StringVar(&addrFile, "addr-file", "", "write the listening URL to this file once listening")
	c.Flags().IntVar(&maxInFlight, "max-inflight", 64, "uploads processed at once (once their body is read); more wait 2 s, then get 503 + Retry-After")
	c.Flags().IntVar(&maxPerStore, "max-per-store", 8, "uploads one credential (store) may have open at once; more get 429 + Retry-After")
	c.Flags().DurationVar(&bodyTimeout, "body-timeout", 30*time.Second, "time an upload's body may take to arrive; a slower one gets 408")
	c.Flags().StringVar(&memberFeed, "member-feed", "all", "what uploads put in the member feed every till pulls: all (every balance change, to every store) or identity "+
		"(enrolments, tier changes and flags only; tills take balances from GET /v1/members/{id} when a member is identified) — identity for chains of hundreds of stores and more; "+
		"give every HQ process of one database the same")
	addFraudFlags(c, &fraudSet)
	addEnrolFlags(c, &enrolSet)
	addGatewayFlags(c, &gw)
	return c
}

func storeCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:   "store",
		Short: "Issue, revoke and list store (and admin) credentials",
		Example: `  posagent hq store add S001 --name "Jing'an" --tz Asia/Shanghai
  posagent hq store list
  posagent hq store revoke S001`,
	}
	var name, tz string
	var admin, pii bool
	role := func() string {
		if admin {
			return hq.RoleAdmin
		}
		return hq.RoleStore
	}
	add := &cobra.Command{
		Use:   "add ID",
		Short: "Issue a credential; the token is printed once and only its hash is kept",
		Example: `  posagent hq store add S001 --name "Jing'an" --tz Asia/Shanghai
  posagent hq store add erp --admin          # an admin token for HQ systems (export, KPIs); personal data masked
  posagent hq store add crm --admin --pii    # an admin that reads members' personal data unmasked`,
		Args: cobra.ExactArgs(1),
	}
	add.RunE = func(cmd *cobra.Command, args []string) error {
		var rights []string
		if pii {
			if !admin {
				return errors.New("--pii is for admin credentials: add --admin")
			}
			rights = append(rights, hq.RightPII)
		}
		return withOps(f, func(ctx context.Context, o ops) error {
			tok, err := o.addCred(ctx, role(), args[0], name, tz, rights)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.out, "%s\n", tok)
			fmt.Fprintf(f.errw, "issued %s credential %q; store the token now, HQ keeps only its hash\n", role(), args[0])
			return nil
		})(cmd, args)
	}
	add.Flags().StringVar(&name, "name", "", "display name")
	add.Flags().StringVar(&tz, "tz", "Asia/Shanghai", "store time zone (IANA)")
	add.Flags().BoolVar(&admin, "admin", false, "issue an admin credential instead of a store's")
	add.Flags().BoolVar(&pii, "pii", false, "with --admin: the credential reads members' personal data (name, mobile, birthday, card tokens) unmasked in /v1/export and /admin/members")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a credential at once",
		Example: `  posagent hq store revoke S001
  posagent hq store revoke erp --admin`,
		Args: cobra.ExactArgs(1),
	}
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(f, func(ctx context.Context, o ops) error {
			if err := o.revoke(ctx, role(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(f.out, "revoked %s %s\n", role(), args[0])
			return nil
		})(cmd, args)
	}
	revoke.Flags().BoolVar(&admin, "admin", false, "revoke an admin credential")
	list := &cobra.Command{
		Use:   "list",
		Short: "List credentials",
		Example: `  posagent hq store list
  posagent hq store list --url https://hq:8443 --token $HQ_TOKEN   # while hq serve holds the file`,
		Args: cobra.NoArgs,
		RunE: withOps(f, func(ctx context.Context, o ops) error {
			cs, err := o.creds(ctx)
			if err != nil {
				return err
			}
			sort.Slice(cs, func(i, j int) bool { return cs[i].Role+cs[i].ID < cs[j].Role+cs[j].ID })
			tw := tabwriter.NewWriter(f.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tID\tNAME\tTIME ZONE\tCREATED\tSTATUS\tRIGHTS")
			for _, c := range cs {
				status := "active"
				if c.Revoked() {
					status = "revoked " + c.RevokedAt.UTC().Format(time.RFC3339)
				}
				rights := strings.Join(c.Rights, ",")
				if rights == "" {
					rights = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Role, c.ID, c.Name, c.TimeZone, c.CreatedAt.UTC().Format(time.RFC3339), status, rights)
			}
			return tw.Flush()
		}),
	}
	c.AddCommand(add, revoke, list, storeQRCmd(f))
	return c
}

func kpiCmd(f *flags) *cobra.Command {
	var format, month, out string
	var fraud, pii bool
	var fraudSet hq.FraudSettings
	c := &cobra.Command{
		Use:   "kpi",
		Short: "Member KPIs per store and chain-wide",
		Long: `KPIs for a month (store-local): new members, active members (≥1 sale in the
month), repurchase rate (another sale within 30 days of the first of the
month), member average ticket, points redemption rate (redeemed/issued),
at-risk and dormant counts at month end, and enrolments and points issued per
cashier. Formats: text, json, html (a self-contained page with SVG charts).`,
		Example: `  posagent hq kpi --month 2026-03
  posagent hq kpi --format html --out kpi.html --url http://127.0.0.1:8080 --token $HQ_TOKEN
  posagent hq kpi --fraud --month 2026-03 --fraud-burst-minutes 15`,
		Args: cobra.NoArgs,
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(f, func(ctx context.Context, o ops) error {
			var rep kpiReport
			var err error
			if fraud {
				rep, err = fraudReport(ctx, o, month, fraudSet, pii)
			} else {
				rep, err = o.kpi(ctx, month)
			}
			if err != nil {
				return err
			}
			w := f.out
			if out != "" {
				file, err := os.Create(out)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			switch format {
			case "text":
				err = rep.Text(w)
			case "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				err = enc.Encode(rep)
			case "html":
				err = rep.HTML(w)
			default:
				return fmt.Errorf("--format %q: use text, json or html", format)
			}
			return err
		})(cmd, args)
	}
	c.Flags().StringVar(&format, "format", "text", "text, json or html")
	c.Flags().StringVar(&month, "month", "", "YYYY-MM (default: this month)")
	c.Flags().StringVarP(&out, "out", "o", "", "write to this file instead of stdout")
	c.Flags().BoolVar(&fraud, "fraud", false, "the enrolment fraud signals per store and cashier instead (see docs/hq.md)")
	c.Flags().BoolVar(&pii, "pii", false, "with --fraud: mobiles unmasked (through --url the token needs the pii right)")
	addFraudFlags(c, &fraudSet)
	return c
}

func deadLettersCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:   "deadletters",
		Short: "Entries set aside at ingest: list them, retry them",
		Example: `  posagent hq deadletters list
  posagent hq deadletters retry S001/T1/42`,
	}
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters",
		Example: `  posagent hq deadletters list
  posagent hq deadletters list --all`,
		Args: cobra.NoArgs,
	}
	list.RunE = func(cmd *cobra.Command, args []string) error {
		return withOps(f, func(ctx context.Context, o ops) error {
			ds, err := o.deadLetters(ctx, all)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(f.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRECEIVED\tSTATUS\tREASON")
			for _, d := range ds {
				status := "open"
				if !d.ResolvedAt.IsZero() {
					status = "applied"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID(), d.ReceivedAt.UTC().Format(time.RFC3339), status, d.Reason)
			}
			return tw.Flush()
		})(cmd, args)
	}
	list.Flags().BoolVar(&all, "all", false, "include those already applied")
	retry := &cobra.Command{
		Use:   "retry [STORE/TILL/SEQ...]",
		Short: "Check dead letters again and apply those that pass now (all open ones if none named)",
		Example: `  posagent hq deadletters retry
  posagent hq deadletters retry S001/T1/42`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOps(f, func(ctx context.Context, o ops) error {
				res, err := o.retry(ctx, args)
				if err != nil {
					return err
				}
				for _, id := range res.Applied {
					fmt.Fprintf(f.out, "applied %s\n", id)
				}
				ids := make([]string, 0, len(res.Failed))
				for id := range res.Failed {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				for _, id := range ids {
					fmt.Fprintf(f.out, "still failing %s: %s\n", id, res.Failed[id])
				}
				if len(res.Failed) > 0 {
					return fmt.Errorf("%d dead letters still fail", len(res.Failed))
				}
				return nil
			})(cmd, args)
		},
	}
	c.AddCommand(list, retry)
	return c
}

func couponsCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:     "coupons",
		Short:   "Coupons HQ issues to members",
		Example: `  posagent hq coupons issue --campaign 2026-03 --threshold 100 --value 20`,
	}
	var r hq.RecallRequest
	var threshold, value string
	issue := &cobra.Command{
		Use:   "issue",
		Short: "Issue a recall coupon (回归礼) to every dormant member; stores get it with their next sync",
		Example: `  posagent hq coupons issue --campaign 2026-03 --threshold 100 --value 20
  posagent hq coupons issue --campaign winback-q2 --value 50 --dormant-days 90 --valid-days 14`,
		Args: cobra.NoArgs,
	}
	issue.RunE = func(cmd *cobra.Command, args []string) error {
		var err error
		if r.Threshold, err = entry.ParseYuan(threshold); err != nil {
			return fmt.Errorf("--threshold: %w", err)
		}
		if r.Value, err = entry.ParseYuan(value); err != nil {
			return fmt.Errorf("--value: %w", err)
		}
		return withOps(f, func(ctx context.Context, o ops) error {
			res, err := o.recall(ctx, r)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.out, "issued %d recall coupons (campaign %s)\n", res.Issued, r.Campaign)
			return nil
		})(cmd, args)
	}
	issue.Flags().StringVar(&r.Campaign, "campaign", "", "campaign id (part of the coupon id; re-running it issues nothing new)")
	issue.Flags().StringVar(&r.Name, "name", "回归礼", "coupon name shown to the cashier")
	issue.Flags().StringVar(&threshold, "threshold", "0", "minimum spend in yuan (满X), e.g. 100 or 99.50")
	issue.Flags().StringVar(&value, "value", "", "value in yuan (减Y), e.g. 20")
	issue.Flags().IntVar(&r.ValidDays, "valid-days", 30, "days the coupon is valid from today")
	issue.Flags().IntVar(&r.DormantDays, "dormant-days", 0, "days without a sale that make a member dormant (default: the program's)")
	c.AddCommand(issue)
	return c
}

func programCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:     "program",
		Short:   "Loyalty program versions",
		Example: `  posagent hq program publish program-v2.yaml`,
	}
	publish := &cobra.Command{
		Use:   "publish FILE.yaml",
		Short: "Validate and publish a program version; stores apply it from its effective date",
		Example: `  posagent hq program publish program-v2.yaml
  posagent hq program publish program-v2.yaml --url https://hq:8443 --token $HQ_TOKEN`,
		Args: cobra.ExactArgs(1),
	}
	publish.RunE = func(cmd *cobra.Command, args []string) error {
		src, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		return withOps(f, func(ctx context.Context, o ops) error {
			p, err := o.publish(ctx, src)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.out, "published program version %d, effective from %s\n", p.Version, p.EffectiveFrom)
			return nil
		})(cmd, args)
	}
	c.AddCommand(publish)
	return c
}

package hqcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"posagent/ledger/pin"
	"posagent/ledger/staff"
	"posagent/sync/hq"
)

// cashierOps manage the stores' cashier accounts, on the storage or
// through a running HQ.
type cashierOps interface {
	addCashier(ctx context.Context, r hq.CashierRequest) (hq.CashierInfo, error)
	setCashierDisabled(ctx context.Context, store, id string, disabled bool) (hq.CashierInfo, error)
	resetCashierPIN(ctx context.Context, store, id, p string) (hq.CashierInfo, error)
	cashiers(ctx context.Context, store string) ([]hq.CashierInfo, error)
}

var (
	_ cashierOps = (*local)(nil)
	_ cashierOps = (*remote)(nil)
)

func (l *local) addCashier(ctx context.Context, r hq.CashierRequest) (hq.CashierInfo, error) {
	return l.srv.AddCashier(ctx, r)
}
func (l *local) setCashierDisabled(ctx context.Context, store, id string, disabled bool) (hq.CashierInfo, error) {
	return l.srv.SetCashierDisabled(ctx, store, id, disabled)
}
func (l *local) resetCashierPIN(ctx context.Context, store, id, p string) (hq.CashierInfo, error) {
	return l.srv.ResetCashierPIN(ctx, store, id, p)
}
func (l *local) cashiers(ctx context.Context, store string) ([]hq.CashierInfo, error) {
	return l.srv.Cashiers(ctx, store)
}

func (r *remote) addCashier(ctx context.Context, req hq.CashierRequest) (hq.CashierInfo, error) {
	body, _ := json.Marshal(req)
	var out hq.CashierInfo
	return out, r.call(ctx, "POST", "/admin/cashiers", body, &out)
}
func (r *remote) setCashierDisabled(ctx context.Context, store, id string, disabled bool) (hq.CashierInfo, error) {
	action := "enable"
	if disabled {
		action = "disable"
	}
	var out hq.CashierInfo
	return out, r.call(ctx, "POST", "/admin/cashiers/"+url.PathEscape(store)+"/"+url.PathEscape(id)+"/"+action, nil, &out)
}
func (r *remote) resetCashierPIN(ctx context.Context, store, id, p string) (hq.CashierInfo, error) {
	body, _ := json.Marshal(map[string]string{"pin": p})
	var out hq.CashierInfo
	return out, r.call(ctx, "POST", "/admin/cashiers/"+url.PathEscape(store)+"/"+url.PathEscape(id)+"/pin", body, &out)
}
func (r *remote) cashiers(ctx context.Context, store string) ([]hq.CashierInfo, error) {
	var out struct {
		Cashiers []hq.CashierInfo `json:"cashiers"`
	}
	return out.Cashiers, r.call(ctx, "GET", "/admin/cashiers?store="+url.QueryEscape(store), nil, &out)
}

// readPIN reads a PIN line from standard input (never a flag: it would
// stay in the shell history).
func readPIN(cmd *cobra.Command, id string) (string, error) {
	fmt.Fprintf(cmd.ErrOrStderr(), "PIN for %s (4 to 12 digits): ", id)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no PIN on standard input: type it, or pipe it in (echo 482913 | posagent hq cashier …)")
	}
	fmt.Fprintln(cmd.ErrOrStderr())
	p := strings.TrimSpace(line)
	return p, pin.CheckFormat(p)
}

func cashierCmd(f *flags) *cobra.Command {
	c := &cobra.Command{
		Use:   "cashier",
		Short: "Cashier accounts per store; the store's tills receive them with the member feed",
		Long: `A cashier signs in at the tills of their store with id and PIN. HQ keeps the PIN
only as its argon2id hash and sends the hash, never the PIN, to the store's tills with
their next pull. Disable a cashier who leaves; their session at the till ends then.`,
		Example: `  posagent hq cashier add --store S001 --id c07 --name "Li Na" --role supervisor   # asks for the PIN
  # or pipe the PIN in: echo 482913 | posagent hq cashier add --store S001 --id c08 --name "Wang Fang"
  posagent hq cashier list --store S001
  posagent hq cashier reset-pin --store S001 c08
  posagent hq cashier disable --store S001 c08`,
	}
	var store string
	c.PersistentFlags().StringVar(&store, "store", "", "store id (required)")
	need := func() error {
		if store == "" {
			return errors.New("--store is required")
		}
		return nil
	}
	withCashiers := func(fn func(ctx context.Context, o cashierOps) error) func(*cobra.Command, []string) error {
		return withOps(f, func(ctx context.Context, o ops) error {
			if err := need(); err != nil {
				return err
			}
			co, ok := o.(cashierOps)
			if !ok {
				return errors.New("cashier accounts are not available here")
			}
			return fn(ctx, co)
		})
	}
	var req hq.CashierRequest
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a cashier to a store; the PIN is read from standard input",
		Example: `  posagent hq cashier add --store S001 --id c07 --name "Li Na" --role supervisor
  posagent hq cashier add --store S001 --id c08 --name "Wang Fang" --url https://hq:8443 --token $HQ_TOKEN`,
		Args: cobra.NoArgs,
	}
	add.RunE = func(cmd *cobra.Command, args []string) error {
		if req.ID == "" || req.Name == "" {
			return errors.New("--id and --name are required")
		}
		p, err := readPIN(cmd, req.ID)
		if err != nil {
			return err
		}
		return withCashiers(func(ctx context.Context, o cashierOps) error {
			req.Store, req.PIN = store, p
			ci, err := o.addCashier(ctx, req)
			if err != nil {
				return err
			}
			printCashierInfos(f.out, []hq.CashierInfo{ci})
			return nil
		})(cmd, args)
	}
	add.Flags().StringVar(&req.ID, "id", "", "cashier id (letters, digits, '.', '_', '-'), as typed at sign-in")
	add.Flags().StringVar(&req.Name, "name", "", "name shown at the till")
	add.Flags().StringVar(&req.Role, "role", staff.RoleCashier, "cashier or supervisor (a supervisor approves large top-ups, voids, refunds without receipt)")
	state := func(use, short string, disabled bool) *cobra.Command {
		cmd := &cobra.Command{Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			Example: "  posagent hq cashier " + use + " --store S001 c08"}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return withCashiers(func(ctx context.Context, o cashierOps) error {
				ci, err := o.setCashierDisabled(ctx, store, args[0], disabled)
				if err != nil {
					return err
				}
				printCashierInfos(f.out, []hq.CashierInfo{ci})
				return nil
			})(cmd, args)
		}
		return cmd
	}
	reset := &cobra.Command{
		Use:     "reset-pin ID",
		Short:   "Set a new PIN (read from standard input); a lock at the till ends when the till applies it",
		Example: `  posagent hq cashier reset-pin --store S001 c08`,
		Args:    cobra.ExactArgs(1),
	}
	reset.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := readPIN(cmd, args[0])
		if err != nil {
			return err
		}
		return withCashiers(func(ctx context.Context, o cashierOps) error {
			ci, err := o.resetCashierPIN(ctx, store, args[0], p)
			if err != nil {
				return err
			}
			printCashierInfos(f.out, []hq.CashierInfo{ci})
			return nil
		})(cmd, args)
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List a store's cashiers",
		Example: `  posagent hq cashier list --store S001`,
		Args:    cobra.NoArgs,
		RunE: withCashiers(func(ctx context.Context, o cashierOps) error {
			cs, err := o.cashiers(ctx, store)
			if err != nil {
				return err
			}
			printCashierInfos(f.out, cs)
			return nil
		}),
	}
	c.AddCommand(add, list, state("disable", "Disable a cashier at every till of the store", true),
		state("enable", "Enable a disabled cashier again", false), reset)
	return c
}

func printCashierInfos(w io.Writer, cs []hq.CashierInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tID\tNAME\tROLE\tSTATE")
	for _, c := range cs {
		state := "active"
		if c.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Store, c.ID, c.Name, c.Role, state)
	}
	tw.Flush()
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/agent"
	"posagent/agent/api"
	"posagent/ledger"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

const pathCashiers = "/v1/cashiers"

// newCashierCmd manages the cashier accounts of a till with no HQ. With the
// agent running it goes through its API (the ledger file is the agent's);
// with the agent stopped (a first install) it opens the ledger itself.
func newCashierCmd(g *globals) *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "cashier",
		Short: "Cashier accounts of this till (a till with HQ gets them from HQ: posagent hq cashier)",
		Long: `Cashiers sign in at the cashier page with their id and PIN, and POS software names
the cashier of every write. A PIN is read from standard input (never a flag, which
would stay in the shell history) and only its argon2id hash is kept.`,
		Example: `  posagent cashier add --id c07 --name "Li Na" --role supervisor   # asks for the PIN
  echo 482913 | posagent cashier add --id c08 --name "Wang Fang"
  posagent cashier list
  posagent cashier reset-pin c08
  posagent cashier disable c08`,
	}
	af.register(cmd)
	var c staff.Cashier
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a cashier (or replace one of the same id); the PIN is read from standard input",
		Example: `  posagent cashier add --id c07 --name "Li Na" --role supervisor
  echo 482913 | posagent cashier add --id c08 --name "Wang Fang"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.ID == "" || c.Name == "" {
				return errors.New("--id and --name are required")
			}
			h, err := readPINHash(cmd, c.ID)
			if err != nil {
				return err
			}
			return cashierDo(cmd, g, &af, http.MethodPut, pathCashiers+"/"+c.ID,
				api.PutCashierRequest{Name: c.Name, Role: c.Role, PINHash: h},
				func(l *ledger.Ledger) error {
					return l.PutCashier(cmd.Context(), staff.Cashier{ID: c.ID, Name: c.Name, Role: c.Role, PINHash: h})
				}, c.ID)
		},
	}
	add.Flags().StringVar(&c.ID, "id", "", "cashier id (letters, digits, '.', '_', '-'), as typed at sign-in")
	add.Flags().StringVar(&c.Name, "name", "", "name shown on the page")
	add.Flags().StringVar(&c.Role, "role", staff.RoleCashier, "cashier or supervisor (a supervisor approves large top-ups, voids, refunds without receipt)")

	change := func(use, short, action string, f func(*staff.Cashier)) *cobra.Command {
		return &cobra.Command{
			Use:     use + " <id>",
			Short:   short,
			Example: "  posagent cashier " + use + " c08",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id := args[0]
				return cashierDo(cmd, g, &af, http.MethodPost, pathCashiers+"/"+id+"/"+action, nil,
					func(l *ledger.Ledger) error {
						cs, err := l.Cashier(id)
						if err != nil {
							return err
						}
						f(&cs)
						return l.PutCashier(cmd.Context(), cs)
					}, id)
			},
		}
	}
	disable := change("disable", "Disable a cashier: sign-in and POS writes in their name are refused", "disable", func(c *staff.Cashier) { c.Disabled = true })
	enable := change("enable", "Enable a disabled cashier again", "enable", func(c *staff.Cashier) { c.Disabled = false })
	reset := &cobra.Command{
		Use:     "reset-pin <id>",
		Short:   "Set a new PIN (read from standard input); it also ends a lock after wrong PINs",
		Example: `  posagent cashier reset-pin c08`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			h, err := readPINHash(cmd, id)
			if err != nil {
				return err
			}
			return cashierDo(cmd, g, &af, http.MethodPost, pathCashiers+"/"+id+"/pin", api.PINRequest{PINHash: h},
				func(l *ledger.Ledger) error {
					cs, err := l.Cashier(id)
					if err != nil {
						return err
					}
					cs.PINHash = h
					if err := l.PutCashier(cmd.Context(), cs); err != nil {
						return err
					}
					return l.ClearLockout(cmd.Context(), id)
				}, id)
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the till's cashiers",
		Example: `  posagent cashier list
  posagent cashier list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(&af)
			if err != nil {
				return err
			}
			var out api.CashierList
			raw, err := c.call(cmd.Context(), http.MethodGet, pathCashiers, nil, nil, &out)
			var down *errAgentDown
			if errors.As(err, &down) {
				err = withLedger(g, func(l *ledger.Ledger) error {
					cs, err := l.Cashiers()
					for _, c := range cs {
						v := api.CashierView{ID: c.ID, Name: c.Name, Role: c.Role, Disabled: c.Disabled, Source: c.Source}
						if lo, err := l.CashierLockout(c.ID); err == nil && lo.Locked(time.Now()) {
							v.LockedUntil = lo.LockedUntil
						}
						out.Cashiers = append(out.Cashiers, v)
					}
					return err
				})
				raw = nil
			}
			if err != nil {
				return err
			}
			if af.json && raw != nil {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			printCashiers(cmd.OutOrStdout(), out.Cashiers)
			return nil
		},
	}
	cmd.AddCommand(add, list, disable, enable, reset)
	return cmd
}

// cashierDo runs a change through the running agent, or on the ledger file
// when the agent is not running.
func cashierDo(cmd *cobra.Command, g *globals, af *apiFlags, method, path string, body any, direct func(*ledger.Ledger) error, id string) error {
	c, err := g.client(af)
	if err != nil {
		return err
	}
	var v api.CashierView
	_, err = c.call(cmd.Context(), method, path, nil, body, &v)
	var down *errAgentDown
	if errors.As(err, &down) {
		if err := withLedger(g, direct); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "cashier %s saved in the ledger (the agent is not running)\n", id)
		return nil
	}
	if err != nil {
		return err
	}
	printCashiers(cmd.OutOrStdout(), []api.CashierView{v})
	return nil
}

// withLedger opens the ledger file of the config for f.
func withLedger(g *globals, f func(*ledger.Ledger) error) error {
	cfg, err := g.load()
	if err != nil {
		return err
	}
	if cfg.HQ.URL != "" {
		return errors.New("this till takes its cashiers from HQ (hq.url is set): manage them there with posagent hq cashier …")
	}
	lo, err := agent.LedgerOptions(cfg)
	if err != nil {
		return err
	}
	l, err := ledger.Open(cfg.LedgerPath(), lo)
	if err != nil {
		return err
	}
	ferr := f(l)
	if err := l.Close(); ferr == nil {
		ferr = err
	}
	return ferr
}

// readPINHash reads a PIN line from standard input and hashes it.
func readPINHash(cmd *cobra.Command, id string) (string, error) {
	fmt.Fprintf(cmd.ErrOrStderr(), "PIN for %s (4 to 12 digits): ", id)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("no PIN on standard input: type it, or pipe it in (echo 482913 | posagent cashier …)")
	}
	fmt.Fprintln(cmd.ErrOrStderr())
	p := strings.TrimSpace(line)
	if err := pin.CheckFormat(p); err != nil {
		return "", err
	}
	return pin.Hash(p)
}

func printCashiers(w io.Writer, cs []api.CashierView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATE\tSOURCE")
	for _, c := range cs {
		state := "active"
		switch {
		case c.Disabled:
			state = "disabled"
		case !c.LockedUntil.IsZero():
			state = "locked until " + c.LockedUntil.Local().Format("15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Role, state, c.Source)
	}
	tw.Flush()
}

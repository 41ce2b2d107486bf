// Command posagent is the till agent: it owns the card readers, the offline
// loyalty ledger and the HQ sync client, and serves the POS software and the
// cashier page on a local API. The same binary is the CLI for all of it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries a specific exit status (e.g. `ledger verify` finding
// problems) without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func execute(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	root := newRoot(in, out, errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(errOut, "posagent:", err)
	return 1
}

// globals are the persistent flags every command sees.
type globals struct {
	configPath string
}

func newRoot(in io.Reader, out, errOut io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "posagent",
		Short: "Till agent: card readers, offline loyalty ledger, HQ sync and the local POS API",
		Long: `posagent runs at each till. It reads member cards and codes from magnetic-stripe,
RFID/NFC and barcode/QR readers, keeps an offline loyalty ledger (points, coupons,
stored value), syncs it to HQ, and serves the POS software and the cashier page on
a local HTTP API (default http://127.0.0.1:8420).

The same binary is the command line for all of it: the commands that change or read
members and sales talk to the running agent; ledger maintenance opens the ledger file.`,
		Example: `  # run the agent on embedded defaults (no config file needed)
  posagent run

  # check a config file, then look a member up through the running agent
  posagent config validate --config /etc/posagent/posagent.yaml
  posagent member lookup --card 6222020200112233`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "",
		"config file (default: $POSAGENT_CONFIG, else the OS default such as /etc/posagent/posagent.yaml)")

	root.AddCommand(
		newRunCmd(g),
		newVersionCmd(),
		newConfigCmd(g),
		newServiceCmd(g),
	)
	root.AddCommand(apiCommands(g)...)
	root.AddCommand(externalCommands(g)...)
	return root
}

// path resolves --config, then $POSAGENT_CONFIG.
func (g *globals) path() string {
	if g.configPath != "" {
		return g.configPath
	}
	return os.Getenv("POSAGENT_CONFIG")
}

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"posagent/agent/config"
)

// loadConfig reads the config named by --config or $POSAGENT_CONFIG; with
// neither, the OS default file when it exists, else the embedded defaults.
func (g *globals) load() (config.Config, error) {
	return config.Load(g.path())
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check, show or create the config file",
		Example: `  posagent config validate --config /etc/posagent/posagent.yaml
  posagent config show
  posagent config init > /etc/posagent/posagent.yaml`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the config file; every problem is reported with its key and line",
		Example: `  posagent config validate --config /etc/posagent/posagent.yaml
  # devices[0].framer.kind (line 14): "crlf": use terminator, stx_etx, idle_gap or fixed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			src := c.Source
			if src == "" {
				src = "no config file (" + config.DefaultPath() + " does not exist): embedded defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s\n  store %s, till %s, %d device(s), HQ %s, API %s, ledger %s\n",
				src, c.Store, c.Till, len(c.Devices), orNone(c.HQ.URL), c.API.Listen, c.LedgerPath())
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective config (defaults filled in, secrets redacted)",
		Example: `  posagent config show
  posagent config show --config ./till.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			if c.Source != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "# from %s\n", c.Source)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "# embedded defaults (%s does not exist)\n", config.DefaultPath())
			}
			return c.Show(cmd.OutOrStdout())
		},
	})
	var output string
	var force bool
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starting config (to stdout, or --output FILE)",
		Example: `  posagent config init
  posagent config init --output /etc/posagent/posagent.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				_, err := cmd.OutOrStdout().Write(defaultConfigYAML)
				return err
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(output, flags, 0o600)
			if err != nil {
				if os.IsExist(err) {
					return fmt.Errorf("%s already exists; pass --force to overwrite it", output)
				}
				return err
			}
			if _, err := f.Write(defaultConfigYAML); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", output)
			return nil
		},
	}
	initCmd.Flags().StringVarP(&output, "output", "o", "", "file to write instead of stdout")
	initCmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	cmd.AddCommand(initCmd)
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// defaultConfigYAML is the starting config `config init` and `service
// install` write. It parses to the embedded defaults plus a data directory.
var defaultConfigYAML = []byte(`# posagent configuration. Check it with: posagent config validate --config FILE
store: local            # store id, as HQ knows it
till: till-1            # this till's id within the store
timezone: Asia/Shanghai # dates (birthdays, member day, expiry) are in this zone

# The ledger, generated keys and the API token live here.
# data_dir: /var/lib/posagent

api:
  listen: 127.0.0.1:8420 # the POS software and the cashier page connect here
  # token: generated on first start into <data_dir>/api.token

# Card readers and scanners. Example: a serial magnetic-stripe reader.
devices: []
#  - name: msr
#    transport: serial
#    path: /dev/ttyUSB0
#    baud: 9600
#    framer: {kind: terminator, terminator: CR}
#    decoder: msr
#    rule: {source: track2_pan}
#  - name: scanner
#    transport: serial
#    path: /dev/ttyACM0
#    framer: {kind: terminator, terminator: CR}
#    decoder: barcode
#    rule: {source: barcode_regex, regex: '^M:(\d+)$', group: 1}

# HQ sync; leave url empty for a standalone till.
hq:
  url: ""
#  url: https://hq.example.com
#  token_file: /etc/posagent/hq.token
`)

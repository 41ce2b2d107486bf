package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"posagent/agent"
	"posagent/agent/config"
	"posagent/agent/service"
	"posagent/devices/devicescli"
	"posagent/scripts"
)

func newServiceCmd(g *globals) *cobra.Command {
	var root, binary string
	opts := func(cmd *cobra.Command) (service.Options, error) {
		o := service.Options{Root: root, Binary: binary, Out: cmd.OutOrStdout(), DefaultConfig: defaultConfigYAML}
		if p := g.path(); p != "" {
			if runtime.GOOS != "windows" && !strings.HasPrefix(filepath.Clean(p), filepath.Dir(service.DefaultConfigPath)+"/") {
				// A config elsewhere (a home directory the hardened unit
				// cannot read) is checked, then copied to the system location.
				abs, err := filepath.Abs(p)
				if err != nil {
					return o, err
				}
				if _, err := config.Load(abs); err != nil && cmd.Name() == "install" {
					return o, fmt.Errorf("--config: not installing an invalid config: %w", err)
				}
				o.ConfigFile = abs
				return o, nil
			}
			// A relative path inside the sandbox of --root stays relative
			// to /, otherwise it is taken from the current directory.
			if root == "" {
				abs, err := filepath.Abs(p)
				if err != nil {
					return o, err
				}
				p = abs
			}
			o.Config = p
		}
		return o, nil
	}
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Install, remove, start, stop and inspect the OS service (systemd or Windows SCM)",
		Long: `On Linux, install puts the binary in /usr/local/bin, the systemd unit (Type=notify,
restart on failure, hardened, serial and HID access) in /etc/systemd/system, the udev
rules for HID readers in /etc/udev/rules.d (the fixed list, and rules for the readers in
the config from ` + "`posagent devices udev`" + `) and a sysusers entry for the posagent account;
with --config FILE it installs that file as /etc/posagent/posagent.yaml (a different
existing one is saved beside it), otherwise writes a default config when there is none;
then reloads udev and systemd and enables the unit. On Windows it registers a service with the Service Control Manager
(automatic start, restart on failure) and an event-log source.`,
		Example: `  sudo posagent service install
  sudo posagent service start
  posagent service status

  # stage the files into a directory (packaging), touching nothing on this system
  posagent service install --root ./pkgroot`,
	}
	install := &cobra.Command{
		Use:   "install",
		Short: "Install and enable the service",
		Example: `  sudo posagent service install
  sudo posagent service install --config /etc/posagent/store42.yaml
  posagent service install --root /tmp/stage   # files only, no systemctl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := opts(cmd)
			if err != nil {
				return err
			}
			if err := readerRules(&o, root); err != nil {
				return err
			}
			return service.Install(cmd.Context(), o)
		},
	}
	install.Flags().StringVar(&root, "root", "", "install under this directory instead of / and skip systemctl (Linux)")
	install.Flags().StringVar(&binary, "binary", "", "executable to install (default: this one)")
	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop, disable and remove the service (the ledger and config stay)",
		Example: `  sudo posagent service uninstall
  posagent service uninstall --root /tmp/stage`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := opts(cmd)
			if err != nil {
				return err
			}
			return service.Uninstall(cmd.Context(), o)
		},
	}
	uninstall.Flags().StringVar(&root, "root", "", "remove from this directory instead of / (Linux)")
	start := &cobra.Command{
		Use:     "start",
		Short:   "Start the installed service and wait until it is ready",
		Example: `  sudo posagent service start`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return service.Start(cmd.Context(), service.Options{Out: cmd.OutOrStdout()})
		},
	}
	stop := &cobra.Command{
		Use:     "stop",
		Short:   "Stop the service (in-flight commits finish first)",
		Example: `  sudo posagent service stop`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return service.Stop(cmd.Context(), service.Options{Out: cmd.OutOrStdout()})
		},
	}
	status := &cobra.Command{
		Use:     "status",
		Short:   "Show whether the service is installed and running",
		Example: `  posagent service status`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := service.Status(cmd.Context(), service.Options{Out: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), s)
			return err
		},
	}
	cmd.AddCommand(install, uninstall, start, stop, status)
	return cmd
}

// readerRules generates the udev rules for the readers of the config the
// service will use: the one being installed, else the one already in place.
// Without a config there are no readers, and nothing to generate.
func readerRules(o *service.Options, root string) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	src := o.ConfigFile
	if src == "" {
		src = o.Config
		if src == "" {
			src = service.DefaultConfigPath
		}
		src = filepath.Join(root, src)
		if root == "" {
			src = filepath.Clean(src)
		}
		if _, err := os.Stat(src); err != nil {
			return nil
		}
	}
	cfg, err := config.Load(src)
	if err != nil {
		return fmt.Errorf("read the readers for the udev rules: %w", err)
	}
	rules, err := devicescli.UdevRules(agent.DeviceConfigs(cfg))
	if err != nil {
		return fmt.Errorf("udev rules for the readers in %s: %w", src, err)
	}
	o.ReaderRules = scripts.File{Name: devicescli.UdevRulesName, Data: rules}
	return nil
}

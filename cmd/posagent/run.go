package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"posagent/agent"
	"posagent/agent/config"
	"posagent/agent/service"
)

func newRunCmd(g *globals) *cobra.Command {
	var level string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: readers, ledger, HQ sync and the local API, until stopped",
		Long: `Starts the configured card readers and scanners, opens the offline ledger, starts the
HQ sync client (when hq.url is set) and serves the local API and the cashier page
(default http://127.0.0.1:8420/).

Without a config file it runs on embedded defaults: no readers (the cashier page still
takes typed card numbers), no HQ, the default loyalty program, the ledger in the OS data
directory. The API token is generated on first start into <data_dir>/api.token.

Logs are text on a terminal and JSON under systemd or the Windows service manager.
SIGINT/SIGTERM (Ctrl+C, systemctl stop, a Windows service stop) shut it down cleanly:
requests in flight finish, the ledger is closed. Under systemd (Type=notify) readiness
is reported once the API serves.`,
		Example: `  # embedded defaults
  posagent run

  # a configured till, debug logs
  posagent run --config /etc/posagent/posagent.yaml --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
			}
			log, closeLog := service.NewLogger(cmd.ErrOrStderr(), lvl)
			defer closeLog()
			// The first line says which file applies and why, so a config
			// that is not the one being edited shows at once.
			origin := config.Locate(g.configPath)
			if origin.Path == "" {
				log.Info("config: none, running on built-in defaults", "why", origin.Why,
					"hint", "posagent config init --output "+origin.LookedFor)
			} else {
				log.Info("config: "+origin.Path, "file", origin.Path, "why", origin.Why)
			}
			err := service.Run(cmd.Context(), log, func(ctx context.Context, ready func(string)) error {
				cfg, err := config.Load(origin.Path)
				if err != nil {
					return err
				}
				if cfg.Source == "" {
					log.Info("data directory for the built-in defaults", "data_dir", cfg.DataDir)
				}
				a, err := agent.New(cfg, log)
				if err != nil {
					return err
				}
				a.OnReady(func() {
					if cfg.API.Token == "" && cfg.API.TokenFile == "" {
						log.Info("API token for the POS software", "file", cfg.APITokenPath())
					}
					ready("serving on http://" + a.Addr() + "/")
				})
				return a.Run(ctx)
			})
			if err != nil {
				log.Error("agent stopped", "err", err)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&level, "log-level", envOr("POSAGENT_LOG_LEVEL", "info"), "debug, info, warn or error ($POSAGENT_LOG_LEVEL)")
	return cmd
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

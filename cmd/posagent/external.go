package main

import (
	"github.com/spf13/cobra"

	"posagent/agent"
	"posagent/agent/config"
	"posagent/devices"
	"posagent/devices/devicescli"
	"posagent/ledger"
	"posagent/ledger/ledgercli"
	"posagent/sync/hqcli"
)

// externalCommands are the command groups other packages provide, given
// what they need from the config file.
func externalCommands(g *globals) []*cobra.Command {
	dev := devicescli.New(devicescli.Config{
		Load: func() ([]devices.Config, []byte, error) {
			cfg, err := g.load()
			if err != nil {
				return nil, nil, err
			}
			key, err := cfg.TokenKeyBytes()
			if err != nil {
				return nil, nil, err
			}
			return agent.DeviceConfigs(cfg), key, nil
		},
		// No token key here: as root (packages, service install) it would
		// be created with an owner the service cannot read.
		Devices: func() ([]devices.Config, error) {
			cfg, err := g.load()
			if err != nil {
				return nil, err
			}
			return agent.DeviceConfigs(cfg), nil
		},
		File: func() string { return config.Locate(g.configPath).Path },
		Check: func(b []byte) error {
			_, err := config.Parse(b)
			return err
		},
	})
	led := ledgercli.NewCommand(func() (string, ledger.Options, error) {
		cfg, err := g.load()
		if err != nil {
			return "", ledger.Options{}, err
		}
		o, err := agent.LedgerOptions(cfg)
		return cfg.LedgerPath(), o, err
	})
	return []*cobra.Command{dev, led, hqcli.NewCommand()}
}

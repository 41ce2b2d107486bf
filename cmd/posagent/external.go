package main

import (
	"strings"

	"github.com/spf13/cobra"

	"posagent/agent"
	"posagent/devices"
	"posagent/devices/devicescli"
	"posagent/ledger"
	"posagent/ledger/ledgercli"
	"posagent/sync/hqcli"
)

// externalCommands are the command groups other packages provide, given
// what they need from the config file.
func externalCommands(g *globals) []*cobra.Command {
	dev := devicescli.NewCommand(func() ([]devices.Config, []byte, error) {
		cfg, err := g.load()
		if err != nil {
			return nil, nil, err
		}
		key, err := cfg.TokenKeyBytes()
		if err != nil {
			return nil, nil, err
		}
		return agent.DeviceConfigs(cfg), key, nil
	})
	if dev.Example == "" {
		dev.Example = `  posagent devices list
  posagent devices monitor --device msr1`
	}
	led := ledgercli.NewCommand(func() (string, ledger.Options, error) {
		cfg, err := g.load()
		if err != nil {
			return "", ledger.Options{}, err
		}
		o, err := agent.LedgerOptions(cfg)
		return cfg.LedgerPath(), o, err
	})
	hq := hqcli.NewCommand()
	fillExamples(hq)
	mountExamples(hq, "posagent")
	return []*cobra.Command{dev, led, hq}
}

// fillExamples gives a command without an example one built from its
// subcommands' examples (or, for a leaf, its own usage line), so that every
// command's --help shows how it is called.
func fillExamples(c *cobra.Command) {
	for _, sub := range c.Commands() {
		fillExamples(sub)
	}
	if c.Example != "" {
		return
	}
	var lines []string
	for _, sub := range c.Commands() {
		if sub.Hidden || sub.Name() == "help" {
			continue
		}
		if first, _, _ := strings.Cut(strings.TrimSpace(sub.Example), "\n"); first != "" {
			lines = append(lines, "  "+first)
		}
	}
	if len(lines) == 0 {
		lines = []string{"  " + c.CommandPath() + " " + strings.TrimPrefix(c.Use, c.Name())}
	}
	c.Example = strings.TrimRight(strings.Join(lines, "\n"), " ")
}

// mountExamples prefixes example lines that start with the command group's
// own name ("hq serve …") with the binary's name, since the group is
// mounted under it.
func mountExamples(c *cobra.Command, parent string) {
	group := c.Name() + " "
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		lines := strings.Split(c.Example, "\n")
		for i, l := range lines {
			trimmed := strings.TrimLeft(l, " \t")
			if strings.HasPrefix(trimmed, group) {
				lines[i] = l[:len(l)-len(trimmed)] + parent + " " + trimmed
			}
		}
		c.Example = strings.Join(lines, "\n")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(c)
}

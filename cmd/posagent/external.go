package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"posagent/agent/config"
	"posagent/devices"
	"posagent/devices/devicescli"
	"posagent/ledger"
	"posagent/ledger/ledgercli"
	"posagent/ledger/loyalty"
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
		return deviceConfigs(cfg), key, nil
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
		o := ledger.Options{Store: cfg.Store, Till: cfg.Till}
		if cfg.Ledger.ProgramFile != "" {
			src, err := os.ReadFile(cfg.Ledger.ProgramFile)
			if err != nil {
				return "", o, fmt.Errorf("ledger.program_file: %w", err)
			}
			p, err := loyalty.ParseProgram(src)
			if err != nil {
				return "", o, fmt.Errorf("ledger.program_file %s: %w", cfg.Ledger.ProgramFile, err)
			}
			o.Programs = loyalty.Programs{p}
		}
		return cfg.LedgerPath(), o, nil
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

// deviceConfigs maps the config file's readers to the devices package's.
func deviceConfigs(c config.Config) []devices.Config {
	out := make([]devices.Config, 0, len(c.Devices))
	for _, d := range c.Devices {
		out = append(out, devices.Config{
			Name: d.Name, Till: d.Till, Transport: d.Transport, Path: d.Path, VID: d.VID, PID: d.PID, Serial: d.Serial,
			Baud: d.Baud, DataBits: d.DataBits, Parity: d.Parity, StopBits: d.StopBits, FlowControl: d.FlowControl,
			Framer: d.Framer, Decoder: d.Decoder, Rule: d.Rule, Layout: d.Layout, HIDReport: d.HIDReport, Debounce: d.Debounce,
		})
	}
	return out
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

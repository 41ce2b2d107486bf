package main

import "github.com/spf13/cobra"

// externalCommands are the command groups other packages provide.
func externalCommands(g *globals) []*cobra.Command {
	return nil
}

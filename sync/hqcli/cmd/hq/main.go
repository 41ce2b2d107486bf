// Command hq is the HQ server and its admin tool (see sync/hqcli), the same
// command tree as "posagent hq" for an HQ host without the till agent.
package main

import (
	"os"

	"posagent/sync/hqcli"
)

func main() {
	root := hqcli.NewCommand()
	root.Long += `

This is the standalone hq binary: it takes the same commands and flags as
"posagent hq", whose name the examples use (run "hq store list" for
"posagent hq store list").`
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}

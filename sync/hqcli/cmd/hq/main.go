// Command hq is the HQ server and its admin tool (see sync/hqcli).
package main

import (
	"os"

	"posagent/sync/hqcli"
)

func main() {
	if err := hqcli.NewCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

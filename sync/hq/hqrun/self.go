package hqrun

import (
	"os"

	"posagent/sync/hqcli"
)

// selfEnv marks a process started by Self: it runs the hq command.
const selfEnv = "POSAGENT_HQRUN_SELF_HQ"

// Self is the command and environment (for HQ.Command and HQ.Env) that
// start this very binary as `hq`, so a test needs no separate build of
// posagent. The binary's TestMain must call RunSelf first.
func Self() (command, env []string) {
	return []string{os.Args[0]}, []string{selfEnv + "=1"}
}

// RunSelf runs the hq command with this process's arguments and exits,
// when the process was started through Self; otherwise it returns at once.
func RunSelf() {
	if os.Getenv(selfEnv) != "1" {
		return
	}
	cmd := hqcli.NewCommand()
	cmd.SetArgs(os.Args[1:])
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

package multitest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd if the test process dies first, so
// a test killed mid-run leaves no HQ process behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

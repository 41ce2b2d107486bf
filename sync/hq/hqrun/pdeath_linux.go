package hqrun

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill cmd if this process dies first, so a
// test or load run killed mid-way leaves no HQ process behind.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

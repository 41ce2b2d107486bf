//go:build !windows

package devicescli

import (
	"os"
	"syscall"
)

// keepOwner gives the new file the owner and group of the one it replaces:
// the config is root:posagent, and root editing it must not lock the
// service out.
func keepOwner(f *os.File, old os.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

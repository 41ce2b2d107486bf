//go:build linux

package serialdev

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const rtsctsSupported = true

// enableRTSCTS sets CRTSCTS on the tty at path. go.bug.st/serial keeps its
// descriptor private, so we find our own descriptor of the same character
// device (same st_rdev) under /proc/self/fd: termios belongs to the tty, not
// to the descriptor, so any of ours will do.
func enableRTSCTS(path string) error {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != want.Rdev {
			continue
		}
		t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			continue
		}
		t.Cflag |= unix.CRTSCTS
		return unix.IoctlSetTermios(fd, unix.TCSETS, t)
	}
	return fmt.Errorf("no open descriptor for %s found", path)
}

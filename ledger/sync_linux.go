package ledger

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data (and the size, if it changed) but not its
// timestamps: an overwrite inside the file costs no journal commit.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

package durable

import (
	"fmt"
	"os"
)

// Name makes the name of path durable after it was created or linked.
// Windows has no directory fsync: FlushFileBuffers needs a handle opened for
// writing, a directory opened by os.Open is read-only and the call fails with "Access is denied". NTFS journals the new name (the
// directory index entry and the file's own record) in its metadata log,
// and FlushFileBuffers on the file commits the file's pending metadata —
// which flushes that log through the change — and then the disk's write
// cache. So the file is flushed through its new name instead of the
// directory (docs/ledger.md, "Durability per operating system").
func Name(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s to flush it: %w", path, err)
	}
	serr := f.Sync()
	cerr := f.Close()
	if serr != nil {
		return fmt.Errorf("flush %s: %w", path, serr)
	}
	return cerr
}

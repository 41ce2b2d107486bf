//go:build !windows

package ledger

import (
	"fmt"
	"os"
	"path/filepath"
)

// syncName makes the name of path durable after the ledger created or
// linked it: on POSIX systems a new directory entry survives a power cut
// only once its directory is fsynced.
func syncName(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ledger: open directory %s to fsync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ledger: fsync directory %s: %w", dir, err)
	}
	return nil
}

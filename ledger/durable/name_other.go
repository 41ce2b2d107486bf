//go:build !windows

package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// Name makes the name of path durable after it was created or linked: on
// POSIX systems a new directory entry survives a power cut only once its
// directory is fsynced.
func Name(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to fsync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

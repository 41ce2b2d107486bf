//go:build !linux

package ledger

import "os"

// fdatasync has no data-only variant here: File.Sync is fsync (F_FULLFSYNC
// on macOS, so the drive's cache is flushed too) and FlushFileBuffers on
// Windows, which writes the file's data and metadata and flushes the disk
// cache (docs/ledger.md, "Durability per operating system").
func fdatasync(f *os.File) error { return f.Sync() }

//go:build !linux

package ledger

// releasePages does nothing here: RSS of mapped file pages is left to the
// operating system.
func releasePages(addr, n uintptr) {}

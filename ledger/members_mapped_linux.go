package ledger

import "golang.org/x/sys/unix"

// releasePages drops the pages of the mapping at [addr, addr+n) from the
// process (they stay in the page cache). The mapping is bbolt's read-only
// shared one: nothing in it is dirty, so nothing can be lost.
func releasePages(addr, n uintptr) {
	if addr == 0 || n == 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED)
}

package ledger

import (
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// bbolt reads the file through a shared read-only mapping, and every page a
// lookup touches stays mapped, so counted in the process's RSS, until the
// file is closed: after a day of lookups over a chain's members the RSS is
// the part of the file read, whatever is needed now. The pages are the page
// cache's, so dropping them from the mapping loses nothing: a later read
// maps them again from the cache (a minor fault) or, if the kernel evicted
// them meanwhile, from the disk. bbolt has no option for this, so the
// ledger releases the mapping's pages itself (madvise MADV_DONTNEED, on
// Linux) every releaseEvery member lookups and after each bulk write.

// releaseEvery is how many member lookups may add to the mapped pages
// between releases. A lookup faults in a few pages (a leaf and branches of
// the member index and of the members bucket), and once the page cache is
// warm the kernel maps up to 16 cached neighbours with each fault
// (fault-around, 64 KiB), which MADV_RANDOM does not stop: 256 lookups add
// at most about 256 × 4 × 64 KiB = 64 MiB, usually a fraction of it. A
// release costs a madvise over the file's range and, after it, a minor
// fault per page touched again (the hot branch pages).
const releaseEvery = 256

// lookups counts member lookups of every ledger of the process (normally
// one); a release is due when it passes a multiple of releaseEvery.
var lookups atomic.Int64

func (l *Ledger) noteLookup() {
	if lookups.Add(1)%releaseEvery == 0 {
		l.releaseMapped()
	}
}

// releaseMapped drops the file's pages from the process's mapping. It holds
// a read transaction so bbolt cannot remap meanwhile, and covers the pages
// of that transaction, which are all mapped.
func (l *Ledger) releaseMapped() {
	_ = l.db.View(func(tx *bolt.Tx) error {
		releasePages(l.db.Info().Data, uintptr(tx.Size()))
		return nil
	})
}

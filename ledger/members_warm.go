package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A lookup by card or mobile reads a page of the member index and a page of
// the members bucket (plus branch pages). Right after a start, or once the
// kernel has dropped them, those are disk reads, and on a till's disk one
// read's p99 is several milliseconds. WarmMembers reads exactly those two
// buckets' pages into the page cache in large sequential reads, through
// its own file handle: not through bbolt's mapping, so the process's RSS
// does not grow, and without a read transaction, so writers never wait on
// it. Open does not call it (start-up must not depend on the members
// held); the agent runs it in the background once it answers.

// WarmStats says what WarmMembers read.
type WarmStats struct {
	Pages int           // pages of the two buckets found (first pages of branches and leaves)
	Bytes int64         // bytes read (with the gaps read over)
	Reads int           // read calls
	Took  time.Duration // wall time
}

// warmRun is the most a read covers (pages × page size); runs a few pages
// apart are read as one.
const (
	warmRun = 1 << 20
	warmGap = 4
)

// WarmMembers reads the pages of the member index and the members bucket
// (branches and leaves) into the operating system's page cache, level by
// level of their B+trees, each level in page order. It stops early when
// ctx ends. Pages a writer freed meanwhile are recognised by their header
// and skipped: nothing read here is used except to find more pages.
func (l *Ledger) WarmMembers(ctx context.Context) (WarmStats, error) {
	start := time.Now()
	var st WarmStats
	var level []uint64
	var size int64
	err := l.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		for _, name := range [][]byte{bIndex, bMembers} {
			if b := tx.Bucket(name); b != nil && b.Root() != 0 {
				level = append(level, uint64(b.Root()))
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	f, err := os.Open(l.path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	psz := uint64(l.pageSize)
	maxID := uint64(size) / psz
	buf := make([]byte, warmRun)
	// A B+tree is a few levels deep; the bound only guards against a
	// cycle made of pages rewritten while they were read.
	for depth := 0; len(level) > 0 && depth < 16; depth++ {
		slices.Sort(level)
		level = slices.Compact(level)
		var next []uint64
		for i := 0; i < len(level); {
			if err := ctx.Err(); err != nil {
				st.Took = time.Since(start)
				return st, err
			}
			// One run: from level[i] while the next page is close and
			// the run fits the buffer.
			first := level[i]
			if first < 2 || first >= maxID {
				i++
				continue
			}
			j := i + 1
			for j < len(level) && level[j] < maxID && level[j]-level[j-1] <= warmGap && (level[j]-first+1)*psz <= warmRun {
				j++
			}
			n := (level[j-1] - first + 1) * psz
			got, err := f.ReadAt(buf[:n], int64(first*psz))
			if err != nil && !errors.Is(err, io.EOF) {
				st.Took = time.Since(start)
				return st, err
			}
			st.Reads++
			st.Bytes += int64(got)
			for _, id := range level[i:j] {
				off := (id - first) * psz
				if off+psz > uint64(got) {
					break
				}
				var ok bool
				if next, ok = warmPage(buf[off:off+psz], id, maxID, next); ok {
					st.Pages++
				}
			}
			i = j
		}
		level = next
	}
	st.Took = time.Since(start)
	return st, nil
}

// bbolt's page layout (go.etcd.io/bbolt/internal/common): a 16-byte
// header (id, flags, count, overflow) in the machine's byte order, then
// for a branch page count elements of (pos, ksize uint32, child id uint64).
const (
	pageHeader    = 16
	branchElement = 16
	branchFlag    = 0x01
	leafFlag      = 0x02
)

// warmPage adds to next the pages p leads to: a branch's children, a
// leaf's overflow pages (read with the level below), and reports whether
// p is a branch or leaf page. p is the first page of page id as read; one
// whose header names another page (freed and rewritten meanwhile, or an
// overflow page) leads nowhere.
func warmPage(p []byte, id, maxID uint64, next []uint64) ([]uint64, bool) {
	ne := binary.NativeEndian
	if ne.Uint64(p) != id {
		return next, false
	}
	flags, count, overflow := ne.Uint16(p[8:]), int(ne.Uint16(p[10:])), uint64(ne.Uint32(p[12:]))
	switch flags {
	case branchFlag:
		for k := 0; k < count && pageHeader+(k+1)*branchElement <= len(p); k++ {
			if c := ne.Uint64(p[pageHeader+k*branchElement+8:]); c >= 2 && c < maxID {
				next = append(next, c)
			}
		}
	case leafFlag:
		for o := uint64(1); o <= overflow && id+o < maxID; o++ {
			next = append(next, id+o)
		}
	default:
		return next, false
	}
	return next, true
}

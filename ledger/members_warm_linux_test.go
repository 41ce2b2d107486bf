package ledger

import (
	"context"
	"os"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// After WarmMembers the buckets' pages are in the page cache: the file's
// resident pages (mincore) grow by at least the pages it found, from a
// cache dropped before.
func TestWarmMembersFillsThePageCache(t *testing.T) {
	l, _ := open(t)
	ld, err := l.LoadMembers()
	require.NoError(t, err)
	var page []MemberState
	for i := range 20_000 {
		page = append(page, benchMemberState(i))
	}
	require.NoError(t, ld.Add(page))
	require.NoError(t, ld.Finish())
	l.releaseMapped()

	f, err := os.Open(l.Path())
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	require.NoError(t, unix.Fdatasync(int(f.Fd())))
	require.NoError(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(m)
	resident := func() int {
		v := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
		_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&v[0])))
		require.Zero(t, e)
		n := 0
		for _, b := range v {
			n += int(b & 1)
		}
		return n
	}
	before := resident()
	st, err := l.WarmMembers(context.Background())
	require.NoError(t, err)
	after := resident()
	t.Logf("resident pages of the file: %d before, %d after; %d bucket pages found, %d bytes in %d reads, %v", before, after, st.Pages, st.Bytes, st.Reads, st.Took)
	require.Greater(t, st.Pages, 100)
	require.GreaterOrEqual(t, after-before, st.Pages*l.pageSize/os.Getpagesize())
}

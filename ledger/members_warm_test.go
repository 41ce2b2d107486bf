package ledger

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// WarmMembers finds every branch and leaf page of the member index and the
// members bucket, whatever the order of the pages in the file (a bulk load,
// then members changed and added at random places, which moves pages).
func TestWarmMembersFindsTheBuckets(t *testing.T) {
	l, _ := open(t)
	const n = 30_000
	ld, err := l.LoadMembers()
	require.NoError(t, err)
	var page []MemberState
	for _, i := range benchOrder(n) {
		page = append(page, benchMemberState(i))
		if len(page) == 5000 {
			require.NoError(t, ld.Add(page))
			page = page[:0]
		}
	}
	require.NoError(t, ld.Finish())
	page = page[:0]
	for i := 0; i < 3000; i++ {
		s := benchMemberState((i * 7919) % (n + 2000)) // changed, and 2,000 new
		s.Points += 3
		page = append(page, s)
	}
	require.NoError(t, l.ApplyMemberStates(page))

	want := 0
	require.NoError(t, l.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bIndex, bMembers} {
			s := tx.Bucket(name).Stats()
			want += s.BranchPageN + s.LeafPageN
		}
		return nil
	}))
	st, err := l.WarmMembers(context.Background())
	require.NoError(t, err)
	require.Equal(t, want, st.Pages)
	fi, err := os.Stat(l.Path())
	require.NoError(t, err)
	require.LessOrEqual(t, st.Bytes, fi.Size())
	require.GreaterOrEqual(t, st.Bytes, int64(want*l.pageSize))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.WarmMembers(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

package ledger

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stretchr/testify/require"
)

// TestMemberCodes: keys from HQ replace the last ones and survive a
// restart; a code accepted here is a repeat until its Until, then forgotten
// (dropped with the next use); queued claims stay until dropped; the file
// still verifies.
func TestMemberCodes(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: t0}
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, Options{Store: "S1", Till: "T1", Now: c.Now})
	require.NoError(t, err)

	ks, err := l.MemberCodeKeys()
	require.NoError(t, err)
	require.Empty(t, ks, "a new till holds no keys")
	k1 := MemberCodeKey{ID: "0a0b0c0d", Public: bytes.Repeat([]byte{1}, 32)}
	k2 := MemberCodeKey{ID: "01020304", Public: bytes.Repeat([]byte{2}, 32), NotAfter: t0.Add(time.Minute).UTC()}
	require.NoError(t, l.ApplyMemberCodeKeys([]MemberCodeKey{k1}))
	require.NoError(t, l.ApplyMemberCodeKeys([]MemberCodeKey{k2, k1}))
	require.ErrorIs(t, l.ApplyMemberCodeKeys([]MemberCodeKey{{ID: "x", Public: []byte{1}}}), ErrInvalid)

	use := func(code, till string) MemberCodeUse {
		return MemberCodeUse{Code: code, Member: "M7", Till: till, SeenAt: c.Now().UTC(), Expires: c.Now().Add(time.Minute).UTC(), Until: c.Now().Add(75 * time.Second).UTC()}
	}
	a := use("c1", "T1")
	first, rep, err := l.UseMemberCode(ctx, a)
	require.NoError(t, err)
	require.False(t, rep)
	c.Set(t0.Add(30 * time.Second))
	first, rep, err = l.UseMemberCode(ctx, use("c1", "T2"))
	require.NoError(t, err)
	require.True(t, rep)
	require.Equal(t, "T1", first.Till)
	_, rep, err = l.UseMemberCode(ctx, use("c2", "T2"))
	require.NoError(t, err)
	require.False(t, rep)

	require.NoError(t, l.QueueMemberCodeClaim(ctx, a))
	require.NoError(t, l.QueueMemberCodeClaim(ctx, use("c2", "T2")))
	require.NoError(t, l.Close())

	l, err = Open(path, Options{Store: "S1", Till: "T1", Now: c.Now})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	ks, err = l.MemberCodeKeys()
	require.NoError(t, err)
	require.Equal(t, []MemberCodeKey{k2, k1}, ks)
	q, err := l.QueuedMemberCodeClaims(1)
	require.NoError(t, err)
	require.Len(t, q, 1)
	q, err = l.QueuedMemberCodeClaims(10)
	require.NoError(t, err)
	require.Len(t, q, 2)
	require.NoError(t, l.DropMemberCodeClaims([]string{"c1"}))
	q, err = l.QueuedMemberCodeClaims(10)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, "c2", q[0].Code)

	// Past c1's Until it is no repeat any more, and the old use is gone.
	c.Set(t0.Add(80 * time.Second))
	_, rep, err = l.UseMemberCode(ctx, use("c1", "T1"))
	require.NoError(t, err)
	require.False(t, rep)
	n := 0
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bMemberCodes).Cursor()
		for k, _ := cur.Seek([]byte{'u'}); k != nil && k[0] == 'u'; k, _ = cur.Next() {
			n++
		}
		return nil
	}))
	require.Equal(t, 2, n, "c1 anew and c2 (still within its time)")
	verifyOK(t, l)
}

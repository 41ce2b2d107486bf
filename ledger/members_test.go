package ledger

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// bbolt writes the freelist with every commit, so Open reads one page
// instead of walking the whole file to rebuild it: both meta pages name a
// freelist page after a clean Close.
func TestFreelistPersisted(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 1000)}})
	require.NoError(t, l.Close())
	raw, err := os.ReadFile(l.Path())
	require.NoError(t, err)
	psz := int(binary.LittleEndian.Uint32(raw[16+8:]))
	for _, off := range []int{0, psz} {
		// page header (16) + magic, version, page size, flags (16) + root bucket (16)
		fl := binary.LittleEndian.Uint64(raw[off+48:])
		require.NotEqual(t, ^uint64(0), fl, "meta page at %d has no freelist", off)
	}
}

// A large batch of member states from HQ is committed straight to bbolt in
// chunks, not written through the write-ahead log, and gives the same state
// (verify replays it).
func TestBulkMemberStates(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "S1-T1-1")
	var states []MemberState
	for i := range 3 * bulkMin {
		states = append(states, MemberState{Member: entry.Member{ID: fmt.Sprintf("H%05d", (i*7919)%(3*bulkMin)), Name: "n", Tier: "silver",
			Mobile: fmt.Sprintf("139%08d", i), CardTokens: []string{fmt.Sprintf("tok%d", i)}}, Points: int64(i)})
	}
	states = append(states, MemberState{Member: entry.Member{ID: "H00000", Tier: "gold", CardTokens: []string{"tokX"}}, Points: 42}) // the last one wins
	wal0, ck0 := l.walBytes.Load(), l.ckpts.Load()
	require.NoError(t, l.ApplyMemberStates(states))
	require.Equal(t, wal0, l.walBytes.Load(), "bulk states went through the write-ahead log")
	require.Greater(t, l.ckpts.Load(), ck0)
	v, err := l.MemberByToken("tokX")
	require.NoError(t, err)
	require.Equal(t, "H00000", v.Member.ID)
	require.Equal(t, int64(42), v.Points)
	_, err = l.MemberByToken("tok0")
	require.ErrorIs(t, err, ErrNotFound)
	v, err = l.MemberByMobile("13900000005")
	require.NoError(t, err)
	require.Equal(t, int64(5), v.Points)
	verifyOK(t, l)
}

// A schema 3 file (no lot-expiry index) is upgraded at Open: the index is
// built once from the lots, and the sweep then finds the expired lots
// through it.
func TestSchema3UpgradeBuildsLotIndex(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	c := &clock{t: t0}
	o := Options{Store: "S1", Till: "T1", Now: c.Now}
	l, err := Open(p, o)
	require.NoError(t, err)
	enrol(t, l, "M1")
	enrol(t, l, "M2")
	sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M2", Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "silver"}, Points: 500}}))
	require.NoError(t, l.Close())

	db, err := bolt.Open(p, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		require.Equal(t, 2, tx.Bucket(bLotExp).Stats().KeyN)
		require.NoError(t, tx.DeleteBucket(bLotExp))
		return tx.Bucket(bMeta).Put([]byte("schema"), u64(schemaNoLotIndex))
	}))
	require.NoError(t, db.Close())

	l, err = Open(p, o)
	require.NoError(t, err)
	defer l.Close()
	var schema uint64
	var keys int
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		schema = getU64(tx.Bucket(bMeta).Get([]byte("schema")))
		keys = countKeys(tx.Bucket(bLotExp))
		return nil
	}))
	require.Equal(t, uint64(SchemaVersion), schema)
	require.Equal(t, 2, keys) // M1 and M2; HQ's lot never expires at the till
	verifyOK(t, l)
	c.Set(time.Date(2027, 1, 1, 0, 0, 0, 0, sh))
	n, err := l.ExpireLots(ctx, c.Now())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, l.read(func(tx *bolt.Tx) error { keys = countKeys(tx.Bucket(bLotExp)); return nil }))
	require.Zero(t, keys)
	require.Equal(t, int64(500), points(t, l, "H1"))
	verifyOK(t, l)
}

// Verify checks the lot-expiry index against the lots.
func TestVerifyChecksLotIndex(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	verifyOK(t, l)
	require.NoError(t, l.snapshot(func(*bolt.Tx) error { return nil }))
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bLotExp).Cursor()
		k, _ := c.First()
		require.NotNil(t, k)
		return tx.Bucket(bLotExp).Delete(k)
	}))
	var b bytesBuf
	ok, err := l.Verify(&b)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, b.String(), "lot-expiry index misses member \"M1\"")
}

// countKeys counts by cursor: Stats does not see a write transaction's
// changes.
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

type bytesBuf struct{ b []byte }

func (w *bytesBuf) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bytesBuf) String() string              { return string(w.b) }

package ledger

import (
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// storedHQ counts the hq log's states and the member's stored lots.
func storedHQ(t *testing.T, l *Ledger, id string) (states, lots int) {
	t.Helper()
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		states = countKeys(tx.Bucket(bHQLog))
		prefix := memberKey(id, tagLot)
		c := tx.Bucket(bMembers).Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			lots++
		}
		return nil
	}))
	return states, lots
}

// A member state from HQ for a member with nothing local pending is kept
// in the member's record only: no hq log entry, no stored lot. The first
// local entry logs it where it was applied, and verify replays the same
// either way.
func TestQuietHQStateStaysOutOfLog(t *testing.T) {
	l, _ := open(t)
	hqm := entry.Member{ID: "H1", Name: "n", Tier: "silver", CardTokens: []string{"tok1"}, Mobile: "13900000001"}
	cp := entry.MemberCoupon{ID: "c1", MemberID: "H1", Name: "c", Value: 500, ValidFrom: "2020-01-01T00:00:00Z", ValidUntil: "2030-01-01T00:00:00Z"}
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: hqm, Points: 300, StoredValue: 900, Coupons: []entry.MemberCoupon{cp}}}))
	states, lots := storedHQ(t, l, "H1")
	require.Zero(t, states, "a quiet member's HQ state went to the hq log")
	require.Zero(t, lots, "a quiet member's HQ lot was stored")
	v, err := l.MemberByToken("tok1")
	require.NoError(t, err)
	require.Equal(t, int64(300), v.Points)
	require.Equal(t, int64(900), v.StoredValue)
	require.Len(t, v.Coupons, 1)
	verifyOK(t, l)

	// A newer state replaces it, still quiet.
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: hqm, Points: 400, StoredValue: 900, Coupons: []entry.MemberCoupon{cp}}}))
	states, _ = storedHQ(t, l, "H1")
	require.Zero(t, states)
	require.Equal(t, int64(400), points(t, l, "H1"))
	verifyOK(t, l)

	// The first local entry: the state is logged, the HQ lot used.
	s := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "H1", RedeemPoints: 100, CouponID: "c1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.Len(t, s.Sale.LotsUsed, 1)
	states, lots = storedHQ(t, l, "H1")
	require.Equal(t, 1, states)
	require.GreaterOrEqual(t, lots, 1)
	verifyOK(t, l)

	// Pending now: the next state is logged at once.
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: hqm, Points: 1000}}))
	states, _ = storedHQ(t, l, "H1")
	require.Equal(t, 2, states)
	require.Equal(t, 1000+s.PointsDelta, points(t, l, "H1"))
	verifyOK(t, l)
}

// A sale that only earns leaves the implicit HQ lot in the balance record;
// a later redemption takes from it first (HQ's lot never expires at the
// till).
func TestImplicitHQLotThenEarnAndRedeem(t *testing.T) {
	l, _ := open(t)
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "silver"}, Points: 150}}))
	e := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "H1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.Positive(t, e.PointsDelta)
	verifyOK(t, l)
	r := sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "H1", RedeemPoints: 200, Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.Equal(t, []entry.LotUse{{Lot: r.Sale.LotsUsed[0].Lot, Points: 150}, r.Sale.LotsUsed[1]}, r.Sale.LotsUsed)
	require.Regexp(t, `^hq/\d+$`, r.Sale.LotsUsed[0].Lot)
	verifyOK(t, l)
}

// A quiet member's record is what verify reads the state from; a balance
// that no longer matches the implicit lot is still a break.
func TestVerifyChecksQuietMember(t *testing.T) {
	l, _ := open(t)
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "silver"}, Points: 50}}))
	verifyOK(t, l)
	require.NoError(t, l.snapshot(func(*bolt.Tx) error { return nil }))
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		ms, err := loadMember(tx, "H1")
		require.NoError(t, err)
		b := ms.bal
		require.NotZero(t, b.Unlogged)
		b.Points = 5000
		return tx.Bucket(bMembers).Put(memberKey("H1", tagBalance), b.encode(nil))
	}))
	var out bytesBuf
	ok, err := l.Verify(&out)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, out.String(), "member H1: lots sum to 50, balance is 5000")
}

// A local entry of the member HQ has not acknowledged keeps the state in
// the log, even when the pending points sum to zero.
func TestPendingMemberStateLogged(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "M1", Tier: "silver"}, Points: 10}}))
	states, _ := storedHQ(t, l, "M1")
	require.Equal(t, 1, states, "the enrolment's welcome coupon is pending")
	verifyOK(t, l)
}

// The balance record is written in format 3 with or without HQ fields, and
// reads back (formats 1 and 2 of earlier files: TestBalanceRecord).
func TestBalanceFormats(t *testing.T) {
	b := balance{Points: 5, Recent: []spend{{Day: 20260101, Amount: 3, Sales: 1}}}
	raw := b.encode(nil)
	require.Equal(t, byte(balanceFormatFlags), raw[0])
	b.Unlogged, b.HQLotKey, b.HQLotRem = 7, 7, 5
	raw = b.encode(nil)
	require.Equal(t, byte(balanceFormatFlags), raw[0])
	var got balance
	require.NoError(t, decodeBalance(raw, &got))
	require.Equal(t, b, got)
	require.Error(t, decodeBalance(raw[:len(raw)-1], &got))
}

// A schema 4 file is marked with the current schema at Open without
// rewriting anything.
func TestSchema4Upgrade(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	p, o := l.Path(), l.o
	require.NoError(t, l.Close())
	db, err := bolt.Open(p, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("schema"), u64(schemaLotIndex))
	}))
	require.NoError(t, db.Close())
	l, err = Open(p, o)
	require.NoError(t, err)
	defer l.Close()
	var schema uint64
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		schema = getU64(tx.Bucket(bMeta).Get([]byte("schema")))
		return nil
	}))
	require.Equal(t, uint64(SchemaVersion), schema)
	verifyOK(t, l)
}

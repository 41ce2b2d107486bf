package ledger

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// Every member reads back exactly as given from its binary record, whatever
// its fields hold; truncated records are errors, not panics.
func TestMemberRecordRoundTrip(t *testing.T) {
	card := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for _, m := range []entry.Member{
		{ID: "S0001-T1-42", Name: "张伟", Mobile: "13900000042", Birthday: "1970-01-31", Tier: "gold",
			CardTokens: []string{card}, EnrolledAt: "2026-03-01T10:00:00Z"},
		{ID: "M1"},
		{ID: "M2", Name: "n", Mobile: "+86 139", Birthday: "01-31", Tier: "silver", ReferrerID: "M1",
			CardTokens: []string{"tok1", "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", card[:63] + "g", card},
			EnrolledAt: "2026-03-01T18:00:00+08:00"},
		{ID: "M3", Mobile: "1390000004", Birthday: "1970-1-3", EnrolledAt: "2026-03-01T10:00:00.5Z"},
		{ID: "other", Name: "stored under another key", EnrolledAt: "not a time"},
	} {
		key := m.ID
		if m.ID == "other" {
			key = "M4"
		}
		raw := encodeMember(key, &m, nil)
		var got entry.Member
		_, err := decodeMember(key, raw, &got, nil)
		require.NoError(t, err)
		require.Equal(t, m, got)
		for i := range raw {
			_, err = decodeMember(key, raw[:i], &got, nil)
			require.Error(t, err, "truncated at %d of %d", i, len(raw))
		}
	}
}

// A typical member (one card, a mobile, a birthday) takes a fraction of its
// JSON, its balance included in the same record; a JSON record and separate
// balance of an earlier schema are still read, and the balance moves into
// the record when the member is next saved.
func TestMemberRecordSize(t *testing.T) {
	s := benchMemberState(123457)
	s.LastSale = time.Time{}
	raw := encodeMember(s.Member.ID, &s.Member, nil)
	js, _ := json.Marshal(s.Member)
	require.Less(t, len(raw), 80, "binary member record %d bytes (JSON %d)", len(raw), len(js))

	l, _ := open(t)
	require.NoError(t, l.ApplyMemberStates([]MemberState{s}))
	var stored []byte
	var bal balance
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		stored = append(stored, tx.Bucket(bMembers).Get(memberKey(s.Member.ID, tagMember))...)
		require.Nil(t, tx.Bucket(bMembers).Get(memberKey(s.Member.ID, tagBalance)))
		return nil
	}))
	require.Less(t, len(stored), 100, "member record with balance %d bytes", len(stored))
	var m entry.Member
	hasBal, err := decodeMember(s.Member.ID, stored, &m, &bal)
	require.NoError(t, err)
	require.True(t, hasBal)
	require.Equal(t, s.Member, m)
	require.Equal(t, s.Points, bal.Points)

	require.NoError(t, l.snapshot(func(*bolt.Tx) error { return nil }))
	bal.Points += 100 // the separate key wins over what the record holds
	bal.HQLotRem += 100
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		require.NoError(t, tx.Bucket(bMembers).Put(memberKey(s.Member.ID, tagBalance), bal.encode(nil)))
		return tx.Bucket(bMembers).Put(memberKey(s.Member.ID, tagMember), js)
	}))
	v, err := l.MemberByToken(s.Member.CardTokens[0])
	require.NoError(t, err)
	require.Equal(t, s.Member, v.Member)
	require.Equal(t, s.Points+100, v.Points)
	verifyOK(t, l)
	e := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: s.Member.ID, Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket(bMembers).Get(memberKey(s.Member.ID, tagBalance)))
		return nil
	}))
	require.Equal(t, s.Points+100+e.PointsDelta, points(t, l, s.Member.ID))
	verifyOK(t, l)
}

// Coupon states read back exactly from their binary record, a JSON record
// of an earlier schema is still read, and a typical one is a fraction of
// its JSON.
func TestCouponRecord(t *testing.T) {
	for _, cs := range []couponState{
		{Coupon: entry.MemberCoupon{ID: "welcome-M1", MemberID: "M1", Name: "Welcome", Threshold: 5000, Value: 500,
			ValidFrom: "2026-01-01T00:00:00Z", ValidUntil: "2027-12-31T00:00:00Z"}},
		{Coupon: entry.MemberCoupon{ID: "other", MemberID: "M9", Name: "满100减10", Value: 1000, SKUs: []string{"A", "B"},
			ValidFrom: "2026-01-01T08:00:00+08:00", ValidUntil: ""}, Used: true, UsedTill: "T2", UsedSeq: 7, IssuedTill: "T1", IssuedSeq: 3},
	} {
		raw := encodeCoupon("M1", "welcome-M1", &cs)
		var got couponState
		require.NoError(t, decodeCoupon("M1", "welcome-M1", raw, &got))
		require.Equal(t, cs, got)
		for i := range raw {
			require.Error(t, decodeCoupon("M1", "welcome-M1", raw[:i], &got), "truncated at %d", i)
		}
		js, _ := json.Marshal(cs)
		require.NoError(t, decodeCoupon("M1", "welcome-M1", js, &got))
		require.Equal(t, cs, got)
		if cs.Coupon.ID == "welcome-M1" {
			require.Less(t, len(raw), 40, "binary %d bytes, JSON %d", len(raw), len(js))
		}
	}
}

// Balances read back exactly from format 3 whatever their fields hold,
// truncated records are errors, and the formats of earlier schemas are
// still read.
func TestBalanceRecord(t *testing.T) {
	legacy := func(f byte, b *balance) []byte {
		buf := []byte{f}
		for _, v := range []int64{b.Points, b.StoredValue, b.PendPoints, b.PendSV, b.LastSale, int64(b.OffDay), b.OffRedeemed} {
			buf = binary.AppendVarint(buf, v)
		}
		buf = binary.AppendUvarint(buf, uint64(len(b.Recent)))
		for _, s := range b.Recent {
			buf = binary.AppendVarint(binary.AppendVarint(binary.AppendVarint(buf, int64(s.Day)), s.Amount), int64(s.Sales))
		}
		if f == balanceFormatHQ {
			buf = binary.AppendVarint(binary.AppendUvarint(binary.AppendUvarint(buf, b.Unlogged), b.HQLotKey), b.HQLotRem)
		}
		return buf
	}
	for _, b := range []balance{
		{},
		{Points: 4999, StoredValue: 6000, LastSale: 1.75e9, Unlogged: 123456, HQLotKey: 123456, HQLotRem: 4999},
		{Points: -40, Unlogged: 7},
		{Points: 10, HQLotKey: 9, HQLotRem: 10},
		{Points: 10, Unlogged: 3, HQLotKey: 9, HQLotRem: 4},
		{Points: 10, HQLotRem: 0, PendPoints: -5, PendSV: 7, OffDay: 20260301, OffRedeemed: 100,
			Recent: []spend{{Day: 20260301, Amount: 1000, Sales: 1}, {Day: 20260302, Amount: -5, Sales: -1}}},
	} {
		raw := b.encode(nil)
		var got balance
		require.NoError(t, decodeBalance(raw, &got))
		require.Equal(t, b, got)
		for i := range raw {
			require.Error(t, decodeBalance(raw[:i], &got), "truncated at %d", i)
		}
		if b.Unlogged == 0 && b.HQLotKey == 0 && b.HQLotRem == 0 {
			require.NoError(t, decodeBalance(legacy(balanceFormat, &b), &got))
			require.Equal(t, b, got)
		}
		require.NoError(t, decodeBalance(legacy(balanceFormatHQ, &b), &got))
		require.Equal(t, b, got)
	}
	hq := balance{Points: 4999, StoredValue: 6000, LastSale: 1.75e9, Unlogged: 123456, HQLotKey: 123456, HQLotRem: 4999}
	require.LessOrEqual(t, len(hq.encode(nil)), 14, "a member as HQ sent it")
}

package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
)

// ixEntries lists the member index as kind/hash-hex → member id.
func ixEntries(t *testing.T, l *Ledger) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		return tx.Bucket(bIndex).ForEach(func(k, v []byte) error {
			es, err := decodeSlot(v)
			require.NoError(t, err)
			for _, e := range es {
				out[string(k)+string(e.rest[:])] = e.id
			}
			return nil
		})
	}))
	return out
}

// Cards and mobiles are found through the packed member index, keyed
// tokens and any other token alike; nothing goes to the earlier indexes.
func TestCardIndexKeysRaw(t *testing.T) {
	l, _ := open(t)
	card := benchCard(7)
	require.NoError(t, l.ApplyMemberStates([]MemberState{
		{Member: entry.Member{ID: "H1", Tier: "silver", CardTokens: []string{card}, Mobile: "13900000001"}},
		{Member: entry.Member{ID: "H2", Tier: "silver", CardTokens: []string{"tok2"}}},
	}))
	require.Len(t, ixEntries(t, l), 3)
	require.Empty(t, tokenKeys(t, l))
	v, err := l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	v, err = l.MemberByToken("tok2")
	require.NoError(t, err)
	require.Equal(t, "H2", v.Member.ID)
	v, err = l.MemberByMobile("13900000001")
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	_, err = l.MemberByToken(benchCard(8))
	require.ErrorIs(t, err, ErrNotFound)
	verifyOK(t, l)
}

func tokenKeys(t *testing.T, l *Ledger) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		return tx.Bucket(bByToken).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	}))
	return out
}

// Files of earlier schemas keyed the card index by the token's text, or
// (schema 5) by its whole 32-byte hash: such a key is still found, blocks
// enrolling the card again, and moves to the member index when the member
// next changes.
func TestCardIndexLegacyTextKeys(t *testing.T) {
	for _, legacy := range []func(string) []byte{func(c string) []byte { return []byte(c) }, tokenKey32} {
		legacyKeys(t, legacy)
	}
}

func legacyKeys(t *testing.T, legacy func(string) []byte) {
	l, _ := open(t)
	card := benchCard(9)
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "silver", CardTokens: []string{card}}}}))
	require.NoError(t, l.snapshot(func(*bolt.Tx) error { return nil }))
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		require.NoError(t, tx.Bucket(bIndex).Delete(ixSlot(ixCard, cardHash(card))))
		return tx.Bucket(bByToken).Put(legacy(card), []byte("H1"))
	}))
	require.Empty(t, ixEntries(t, l))
	v, err := l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	_, err = l.Enrol(context.Background(), EnrolRequest{Key: "e1", Member: entry.Member{ID: "M2", Name: "n"}, CardToken: card})
	require.ErrorIs(t, err, ErrKeyConflict)

	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "gold", CardTokens: []string{card}}, Points: 5}}))
	require.Empty(t, tokenKeys(t, l))
	require.Len(t, ixEntries(t, l), 1)
	v, err = l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "gold", v.Member.Tier)
	verifyOK(t, l)
}

// A schema 5 file (cards keyed by 32 bytes, mobiles by their text, no
// member index) opens as schema 6 with an empty member index; its members
// are found by card and mobile as before, and Verify accepts it.
func TestSchema5Upgrade(t *testing.T) {
	l, _ := open(t)
	card := benchCard(5)
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "silver", CardTokens: []string{card}, Mobile: "13900000005"}}}))
	path := l.Path()
	require.NoError(t, l.Close())
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		require.NoError(t, tx.DeleteBucket(bIndex))
		require.NoError(t, tx.Bucket(bByToken).Put(tokenKey32(card), []byte("H1")))
		require.NoError(t, tx.Bucket(bByMobile).Put([]byte("13900000005"), []byte("H1")))
		return tx.Bucket(bMeta).Put([]byte("schema"), u64(5))
	}))
	require.NoError(t, db.Close())
	l, err = Open(path, Options{Store: "S1", Till: "T1", Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	defer l.Close()
	var schema uint64
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		schema = getU64(tx.Bucket(bMeta).Get([]byte("schema")))
		return nil
	}))
	require.Equal(t, uint64(SchemaVersion), schema)
	require.Empty(t, ixEntries(t, l))
	v, err := l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	v, err = l.MemberByMobile("13900000005")
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	verifyOK(t, l)
}

// Verify reports a card or mobile missing from the member index.
func TestVerifyMemberIndex(t *testing.T) {
	l, _ := open(t)
	card := benchCard(6)
	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "silver", CardTokens: []string{card}, Mobile: "13900000006"}}}))
	verifyOK(t, l)
	require.NoError(t, l.snapshot(func(*bolt.Tx) error { return nil }))
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bIndex).Delete(ixSlot(ixCard, cardHash(card)))
	}))
	var out bytesBuf
	ok, err := l.Verify(&out)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, out.String(), "member H1: a card of the member is not in the member index")
}

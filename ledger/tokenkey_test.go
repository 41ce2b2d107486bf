package ledger

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
)

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

// The card index is keyed by 16 bytes: of a keyed hash's own bytes, or of
// any other token's SHA-256; both are found by their text.
func TestCardIndexKeysRaw(t *testing.T) {
	l, _ := open(t)
	card := benchCard(7)
	require.NoError(t, l.ApplyMemberStates([]MemberState{
		{Member: entry.Member{ID: "H1", Tier: "silver", CardTokens: []string{card}}},
		{Member: entry.Member{ID: "H2", Tier: "silver", CardTokens: []string{"tok2"}}},
	}))
	keys := tokenKeys(t, l)
	require.Len(t, keys, 2)
	for k := range keys {
		require.Len(t, k, 16)
	}
	v, err := l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	v, err = l.MemberByToken("tok2")
	require.NoError(t, err)
	require.Equal(t, "H2", v.Member.ID)
	_, err = l.MemberByToken(benchCard(8))
	require.ErrorIs(t, err, ErrNotFound)
	verifyOK(t, l)
}

// Files of earlier schemas keyed the card index by the token's text, or
// (schema 5) by the whole 32-byte hash: such a key is still found, blocks
// enrolling the card again, and is replaced by the 16-byte key when the
// member next changes.
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
		b := tx.Bucket(bByToken)
		require.NoError(t, b.Delete(tokenKey(card)))
		return b.Put(legacy(card), []byte("H1"))
	}))
	v, err := l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "H1", v.Member.ID)
	_, err = l.Enrol(context.Background(), EnrolRequest{Key: "e1", Member: entry.Member{ID: "M2", Name: "n"}, CardToken: card})
	require.ErrorIs(t, err, ErrKeyConflict)

	require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: entry.Member{ID: "H1", Tier: "gold", CardTokens: []string{card}}, Points: 5}}))
	require.Equal(t, map[string]string{string(tokenKey(card)): "H1"}, tokenKeys(t, l))
	v, err = l.MemberByToken(card)
	require.NoError(t, err)
	require.Equal(t, "gold", v.Member.Tier)
	verifyOK(t, l)
}

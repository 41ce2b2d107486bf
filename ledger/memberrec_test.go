package ledger

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
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
		raw := encodeMember(key, &m)
		var got entry.Member
		require.NoError(t, decodeMember(key, raw, &got))
		require.Equal(t, m, got)
		for i := range raw {
			require.Error(t, decodeMember(key, raw[:i], &got), "truncated at %d of %d", i, len(raw))
		}
	}
}

// A typical member (one card, a mobile, a birthday) takes a fraction of its
// JSON, and a JSON record of an earlier schema is still read.
func TestMemberRecordSize(t *testing.T) {
	s := benchMemberState(123457)
	raw := encodeMember(s.Member.ID, &s.Member)
	js, _ := json.Marshal(s.Member)
	require.Less(t, len(raw), 80, "binary member record %d bytes (JSON %d)", len(raw), len(js))

	l, _ := open(t)
	require.NoError(t, l.ApplyMemberStates([]MemberState{s}))
	var stored []byte
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		stored = append(stored, tx.Bucket(bMembers).Get(memberKey(s.Member.ID, tagMember))...)
		return nil
	}))
	require.Equal(t, raw, stored)
	require.NoError(t, l.snapshot(func(*bolt.Tx) error { return nil }))
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMembers).Put(memberKey(s.Member.ID, tagMember), js)
	}))
	v, err := l.MemberByToken(s.Member.CardTokens[0])
	require.NoError(t, err)
	require.Equal(t, s.Member, v.Member)
	verifyOK(t, l)
}

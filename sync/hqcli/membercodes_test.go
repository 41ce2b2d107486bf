package hqcli_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
)

// TestMemberCodeCommands: rotate makes a new key and keeps the old one;
// repeats lists what the storage recorded.
func TestMemberCodeCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	out, _, err := run(t, "membercode", "rotate", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `^new member-code key [0-9a-f]{8}: sent to tills now, signs codes from \S+ \(in 0s\); the old key signs until then\n$`, out,
		"the first key signs at once")
	out, _, err = run(t, "membercode", "rotate", "--db", db, "--lead", "10m")
	require.NoError(t, err)
	require.Regexp(t, `^new member-code key [0-9a-f]{8}: sent to tills now, signs codes from \S+ \(in 10m0s\)`, out)

	st, err := bolt.Open(db, bolt.Options{})
	require.NoError(t, err)
	keys, err := st.MemberCodeKeys(context.Background())
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.False(t, keys[0].RetiredAt.IsZero())
	at := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	for _, s := range []string{"S1", "S2"} {
		_, _, err = st.ClaimMemberCode(context.Background(), hq.MemberCodeClaim{Code: "c", Member: "M7", Store: s, Till: "T1",
			SeenAt: at, Expires: at.Add(time.Minute), At: at, Late: s == "S2"})
		require.NoError(t, err)
	}
	require.NoError(t, st.Close())

	out, _, err = run(t, "membercode", "repeats", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `M7\s+S1/T1\s+2026-03-10T02:00:00Z\s+S2/T1\s+2026-03-10T02:00:00Z\s+true`, out)
	_, _, err = run(t, "membercode", "repeats", "--since", "yesterday", "--db", db)
	require.ErrorContains(t, err, "RFC 3339")
}

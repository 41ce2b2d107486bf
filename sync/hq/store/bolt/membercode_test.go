package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/internal/boltjs"
)

// TestMemberCodeRepeatIndexBuiltOnUpgrade: a schema-5 file kept repeats
// without the time index; opened now, the index is built from them, so a
// month's repeats are found, and an older hq is refused the upgraded file.
func TestMemberCodeRepeatIndexBuiltOnUpgrade(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	for i := range 3 {
		at := hqtest.T0.AddDate(0, i, 0) // March, April, May
		code := fmt.Sprintf("c%d", i)
		_, _, err := st.ClaimMemberCode(ctx, hq.MemberCodeClaim{Code: code, Member: "M1", Store: "S1", Till: "T1", SeenAt: at, Expires: at, At: at})
		require.NoError(t, err)
		_, rep, err := st.ClaimMemberCode(ctx, hq.MemberCodeClaim{Code: code, Member: "M1", Store: "S2", Till: "T2", SeenAt: at, Expires: at, At: at.Add(time.Second)})
		require.NoError(t, err)
		require.True(t, rep)
	}
	require.NoError(t, st.Close())

	asOlderHQ(t, db, 5, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("member_code_repeats_at")) })

	st, err = bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, hqtest.Shanghai)
	reps, err := st.MemberCodeRepeats(ctx, april, april.AddDate(0, 1, 0))
	require.NoError(t, err)
	require.Len(t, reps, 1)
	require.Equal(t, "c1", reps[0].Again.Code)
	reps, err = st.MemberCodeRepeats(ctx, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, 3)
	require.NoError(t, st.Close())

	raw, err := bbolt.Open(db, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, raw.View(func(tx *bbolt.Tx) error {
		require.Greater(t, boltjs.Uint64(tx.Bucket([]byte("meta")).Get([]byte("schema"))), uint64(5),
			"an hq that does not keep the index must not open the file")
		return nil
	}))
	require.NoError(t, raw.Close())
}

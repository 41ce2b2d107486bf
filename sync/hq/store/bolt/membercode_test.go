package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/hq/hqrun"
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

// TestMemberCodeRepeatCostFigures shows that reading one month's
// member-code repeats (the fraud report's read) costs the same whatever
// the history before it: it prints the CPU time of one read of the last
// month after 2 and after 12 months of repeats, beside a read of the whole
// history (what a read without the time index costs), and fails if 12
// months cost more than twice 2 months plus 0.5 ms. Gated:
// POSAGENT_HQ_FRAUD_BENCH=1.
func TestMemberCodeRepeatCostFigures(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_FRAUD_BENCH") == "" {
		t.Skip("set POSAGENT_HQ_FRAUD_BENCH=1 to measure the cost of a month's member-code repeats")
	}
	const perMonth = 1000
	ctx := context.Background()
	// cpuPerRead is the CPU time of one read, over enough reads to be
	// measured in the process's 10 ms ticks.
	cpuPerRead := func(read func()) time.Duration {
		read() // warm
		c0, n := hqrun.ProcCPU(os.Getpid(), false), 0
		for t0 := time.Now(); n < 20 || time.Since(t0) < time.Second; n++ {
			read()
		}
		return (hqrun.ProcCPU(os.Getpid(), false) - c0) / time.Duration(n)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, hqtest.Shanghai)
	var month [2]time.Duration
	for i, months := range []int{2, 12} {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		for m := range months {
			for j := range perMonth {
				at := start.AddDate(0, m, 0).Add(time.Duration(j) * 27 * 24 * time.Hour / perMonth)
				c := hq.MemberCodeClaim{Code: fmt.Sprintf("c%d-%d", m, j), Member: "M1", Store: "S1", Till: "T1", SeenAt: at, Expires: at, At: at}
				_, _, err := st.ClaimMemberCode(ctx, c)
				require.NoError(t, err)
				c.Store, c.At = "S2", at.Add(time.Second)
				_, _, err = st.ClaimMemberCode(ctx, c)
				require.NoError(t, err)
			}
		}
		last := start.AddDate(0, months-1, 0)
		month[i] = cpuPerRead(func() {
			reps, err := st.MemberCodeRepeats(ctx, last, last.AddDate(0, 1, 0))
			require.NoError(t, err)
			require.Len(t, reps, perMonth)
		})
		all := cpuPerRead(func() {
			reps, err := st.MemberCodeRepeats(ctx, time.Time{}, time.Time{})
			require.NoError(t, err)
			require.Len(t, reps, months*perMonth)
		})
		require.NoError(t, st.Close())
		fmt.Printf("member-code repeats bolt: %d months of %d repeats: the last month's read %v CPU, the whole history's %v CPU\n",
			months, perMonth, month[i].Round(10*time.Microsecond), all.Round(10*time.Microsecond))
	}
	limit := 2*month[0] + 500*time.Microsecond
	fmt.Printf("member-code repeats bolt: a month's read after 12 months %v vs after 2 months %v CPU, limit %v\n",
		month[1].Round(10*time.Microsecond), month[0].Round(10*time.Microsecond), limit.Round(10*time.Microsecond))
	require.LessOrEqual(t, month[1], limit, "a month's repeats must not cost more with a longer history")
}

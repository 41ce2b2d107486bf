package hq

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
)

// TestSumIsExact: 128-bit sums agree with big.Int whatever the order, go
// back and forth through their decimal form, and show at the int64 limit
// (flagged) only when the exact sum is beyond it.
func TestSumIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var s Sum
		want := new(big.Int)
		for k := r.IntN(50); k > 0; k-- {
			v := r.Int64()
			if r.IntN(2) == 0 {
				v = -v
			}
			if r.IntN(5) == 0 {
				v = []int64{math.MaxInt64, math.MinInt64, 0, 1, -1}[r.IntN(5)]
			}
			s.Add(SumOf(v))
			want.Add(want, big.NewInt(v))
		}
		require.Equal(t, want.String(), s.String())
		back, err := ParseSum(s.String())
		require.NoError(t, err)
		require.Equal(t, s, back)
		got, ok := s.Int64()
		if want.IsInt64() {
			require.True(t, ok)
			require.Equal(t, want.Int64(), got)
		} else {
			require.False(t, ok)
			require.Equal(t, map[bool]int64{true: math.MaxInt64, false: math.MinInt64}[want.Sign() > 0], got)
		}
	}
	_, err := ParseSum("1000000000000000000000000000000000000000000")
	require.Error(t, err, "beyond 128 bits")
	_, err = ParseSum("12a")
	require.Error(t, err)
}

// TestTotalSumsUnwindPastTheLimit: a sum that passes the int64 limit and
// comes back within it reports the exact figure, unflagged.
func TestTotalSumsUnwindPastTheLimit(t *testing.T) {
	var ts TotalSums
	up := entry.Entry{PointsDelta: math.MaxInt64}
	ts.AddEntry(&up)
	ts.AddEntry(&up)
	over := ts.StoreTotals()
	require.True(t, over.Overflow)
	require.Equal(t, int64(math.MaxInt64), over.Points)
	down := entry.Entry{PointsDelta: -math.MaxInt64}
	ts.AddEntry(&down)
	back := ts.StoreTotals()
	require.False(t, back.Overflow)
	require.Equal(t, int64(math.MaxInt64), back.Points)
	require.EqualValues(t, 3, back.Entries)
}

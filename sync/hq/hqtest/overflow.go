package hqtest

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// RecomputedPoints sums, without overflow, the points deltas of every
// stored entry of the member: what its balance must equal.
func RecomputedPoints(t *testing.T, st hq.Store, member string) *big.Int {
	t.Helper()
	sum := new(big.Int)
	require.NoError(t, st.Scan(ctx(t), func(x hq.Stored) error {
		e := x.Entry
		id := e.MemberID
		if id == "" && e.Enrol != nil {
			id = e.Enrol.Member.ID
		}
		if id == member {
			sum.Add(sum, big.NewInt(e.PointsDelta))
		}
		return nil
	}))
	return sum
}

func deadSeqs(dl []hq.DeadLetter, store, till string) []uint64 {
	var out []uint64
	for _, d := range dl {
		if d.Store == store && d.Till == till && d.ResolvedAt.IsZero() {
			out = append(out, d.Seq)
		}
	}
	return out
}

// testBalanceOverflow: whatever deltas a batch carries, one that would
// take a balance beyond int64 is a dead letter; the batch is acked, the
// till's later entries apply, and the balance equals a recomputation.
func testBalanceOverflow(t *testing.T, st hq.Store) {
	c := ctx(t)
	tl := &Till{Store: "S1", Till: "T1"}
	pts := func(member string, n int64) entry.Entry { return tl.Points(member, T0, n, "correction") }
	check := func(member string, want int64) hq.Member {
		t.Helper()
		m, err := st.Member(c, member)
		require.NoError(t, err)
		require.EqualValues(t, want, m.Points)
		require.Equal(t, RecomputedPoints(t, st, member).String(), big.NewInt(m.Points).String(), "balance = sum of the stored entries")
		return m
	}
	open := func() []uint64 {
		t.Helper()
		ds, err := st.DeadLetters(c, false)
		require.NoError(t, err)
		for _, d := range ds {
			require.False(t, strings.ContainsRune(d.Reason, 0))
		}
		return deadSeqs(ds, "S1", "T1")
	}

	// The batch's own sum leaves int64 at seq 6 (9.2·10^18 + 10^17); the
	// entry after it applies as if it had not come.
	b1 := Batch(tl.Enrol("M1", T0), pts("M1", 4e18), pts("M1", 4e18), pts("M1", 1e18), pts("M1", 2e17), pts("M1", 1e17), pts("M1", -1e18))
	ack, err := st.Ingest(c, b1)
	require.NoError(t, err, "a batch that would overflow a balance is stored, not failed")
	require.EqualValues(t, 7, ack.Acked)
	require.Len(t, ack.DeadLettered, 1)
	require.EqualValues(t, 6, ack.DeadLettered[0].Seq)
	require.Contains(t, ack.DeadLettered[0].Reason, "beyond the balance range")
	check("M1", 8_200_000_000_000_000_000)
	dup, err := st.Ingest(c, b1)
	require.NoError(t, err)
	require.True(t, dup.Duplicate)
	require.Equal(t, ack.DeadLettered, dup.DeadLettered, "a resend gets the same dead letters")

	// A batch whose sum fits int64 but not on top of the balance.
	ack, err = st.Ingest(c, Batch(pts("M1", 1e18), pts("M1", 1e18), pts("M1", 5)))
	require.NoError(t, err)
	require.EqualValues(t, 10, ack.Acked)
	require.Equal(t, []uint64{6, 9}, open())
	check("M1", 9_200_000_000_000_000_005)

	// Downwards as well: below zero is kept and flagged, below int64 not.
	ack, err = st.Ingest(c, Batch(tl.Enrol("M2", T0), pts("M2", -4e18), pts("M2", -4e18), pts("M2", -1e18), pts("M2", -1e18)))
	require.NoError(t, err)
	require.Len(t, ack.DeadLettered, 1)
	require.True(t, check("M2", -9e18).Flagged)
	require.Equal(t, []uint64{6, 9, 15}, open())

	// A retried dead letter that still does not fit stays dead and changes
	// nothing; once the balance has room, the retry applies it.
	var e6 entry.Entry
	ds, err := st.DeadLetters(c, false)
	require.NoError(t, err)
	for _, d := range ds {
		if d.Seq == 6 {
			require.NoError(t, json.Unmarshal(d.Raw, &e6))
		}
	}
	require.EqualValues(t, 1e17, e6.PointsDelta)
	require.ErrorIs(t, st.ResolveDeadLetter(c, "S1", "T1", 6, e6, T0.UTC()), hq.ErrOverflow)
	require.Equal(t, []uint64{6, 9, 15}, open())
	check("M1", 9_200_000_000_000_000_005)
	_, err = st.Ingest(c, Batch(pts("M1", -1e18)))
	require.NoError(t, err)
	require.NoError(t, st.ResolveDeadLetter(c, "S1", "T1", 6, e6, T0.UTC()))
	require.Equal(t, []uint64{9, 15}, open())
	check("M1", 8_300_000_000_000_000_005)

	// Stored value likewise.
	ack, err = st.Ingest(c, Batch(tl.TopUp("M2", T0, math.MaxInt64, 0), tl.TopUp("M2", T0, 1, 0)))
	require.NoError(t, err)
	require.Len(t, ack.DeadLettered, 1)
	require.EqualValues(t, 18, ack.DeadLettered[0].Seq)
	m2, err := st.Member(c, "M2")
	require.NoError(t, err)
	require.EqualValues(t, int64(math.MaxInt64), m2.StoredValue)
}

// testBoundedEntriesOverflow: entries within a till's bounds (at most
// entry.MaxPoints each, batches a till sends) reach the int64 limit after
// 9,224 of the largest; the one that would pass it is a dead letter.
func testBoundedEntriesOverflow(t *testing.T, st hq.Store) {
	c := ctx(t)
	tl := &Till{Store: "S1", Till: "T1"}
	// An enrolment and 4,611 adjustments, then 4,613 more: 9,224 × 10^15 >
	// 2^63 − 1 ≥ 9,223 × 10^15, so the last one does not fit.
	const half = 4612
	for round := range 2 {
		es := make([]entry.Entry, 0, half+1)
		if round == 0 {
			es = append(es, tl.Enrol("M1", T0))
		}
		for len(es) < half+round {
			e := tl.Points("M1", T0, entry.MaxPoints, "correction")
			require.NoError(t, e.Validate())
			es = append(es, e)
		}
		ack, err := st.Ingest(c, Batch(es...))
		require.NoError(t, err)
		require.EqualValues(t, es[len(es)-1].Seq, ack.Acked)
		if round == 0 {
			require.Empty(t, ack.DeadLettered)
		} else {
			require.Len(t, ack.DeadLettered, 1)
			require.EqualValues(t, 2*half+1, ack.DeadLettered[0].Seq)
		}
	}
	m, err := st.Member(c, "M1")
	require.NoError(t, err)
	require.EqualValues(t, int64(2*half-1)*entry.MaxPoints, m.Points)
	require.Equal(t, RecomputedPoints(t, st, "M1").String(), big.NewInt(m.Points).String())
}

package hqtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/wire"
)

// RunIdentityFeed checks a store opened with the identity feed (open must
// return one, fresh and empty): uploads put in the feed only what changes
// who a member is at a till, HQ's own changes all go out, and the
// snapshot and the look-up still give every balance.
func RunIdentityFeed(t *testing.T, open func(t *testing.T) hq.Store) {
	runSuite(t, open, []suiteTest[hq.Store]{
		{"Feed", testIdentityFeed},
	})
}

// pullUntil follows the feed from cursor until the member named by marker
// comes out (a change committed after those the test asserts on), and
// returns every member state handed out by id.
func pullUntil(t *testing.T, st hq.Store, cursor, marker string) (map[string]wire.MemberState, string) {
	got := map[string]wire.MemberState{}
	Eventually(t, "the feed reaches "+marker, func() bool {
		ms, _, c := pullChanges(t, st, cursor, 2)
		cursor = c
		for _, m := range ms {
			got[m.Member.ID] = m
		}
		_, ok := got[marker]
		return ok
	})
	return got, cursor
}

func testIdentityFeed(t *testing.T, st hq.Store) {
	c := ctx(t)
	a := &Till{Store: "SA", Till: "T1"}
	b := &Till{Store: "SB", Till: "T1"}
	_, err := st.Ingest(c, Batch(a.Enrol("M1", T0), a.Enrol("M2", T0), a.TopUp("M2", T0, 1000, 0), a.Enrol("M3", T0)))
	require.NoError(t, err)
	got, cur := pullUntil(t, st, "", "M3")
	require.Len(t, got, 3, "enrolments go out")
	require.EqualValues(t, 1000, got["M2"].StoredValue, "with the balances they came with")

	// Sales, top-ups and coupons change balances only: no feed change.
	_, err = st.Ingest(c, Batch(b.Sale("M1", T0.Add(time.Hour), 1000, 10, 0, 0, ""), b.TopUp("M2", T0.Add(time.Hour), 500, 0),
		b.Coupon("M1", "C1", T0.Add(time.Hour), 300)))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(a.Enrol("X1", T0.Add(2*time.Hour))))
	require.NoError(t, err)
	got, cur = pullUntil(t, st, cur, "X1")
	require.NotContains(t, got, "M1", "a sale and a coupon are not identity changes")
	require.NotContains(t, got, "M2", "a top-up is not an identity change")

	// The look-up has them, and so does a new till's snapshot.
	l, err := st.MemberLookup(c, "SA", "M1")
	require.NoError(t, err)
	require.EqualValues(t, 10, l.Member.Points)
	require.Len(t, l.Member.Coupons, 1)
	snap := map[string]wire.MemberState{}
	_, err = st.Snapshot(c, func(m wire.MemberState) error { snap[m.Member.ID] = m; return nil })
	require.NoError(t, err)
	require.EqualValues(t, 10, snap["M1"].Points)
	require.EqualValues(t, 1500, snap["M2"].StoredValue)

	// A tier change and a new flag go out, with the balances of the moment.
	_, err = st.Ingest(c, Batch(b.Tier("M1", T0.Add(3*time.Hour), "silver", "gold"), b.Sale("M2", T0.Add(3*time.Hour), 9000, 0, 0, 2000, "")))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(a.Enrol("X2", T0.Add(4*time.Hour))))
	require.NoError(t, err)
	got, cur = pullUntil(t, st, cur, "X2")
	require.Equal(t, "gold", got["M1"].Member.Tier)
	require.EqualValues(t, 10, got["M1"].Points)
	require.True(t, got["M2"].Flagged, "a balance below zero flags the member at every till")
	require.EqualValues(t, -500, got["M2"].StoredValue)

	// A flagged member's further spending is no new flag.
	_, err = st.Ingest(c, Batch(b.Sale("M2", T0.Add(5*time.Hour), 100, 0, 0, 100, "")))
	require.NoError(t, err)
	// Changes made at HQ go out: a coupon sent by HQ, a review.
	require.NoError(t, st.ApplyDeltas(c, []hq.Delta{{MemberID: "M3", CouponsIssued: []entry.MemberCoupon{{ID: "R1", MemberID: "M3", Name: "回归礼", Threshold: 10000, Value: 2000}}}}))
	_, err = st.ReviewMember(c, "M2", hq.Review{By: "ops", At: T0.Add(6 * time.Hour).UTC(), Note: "paid in cash"})
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(a.Enrol("X3", T0.Add(6*time.Hour))))
	require.NoError(t, err)
	got, cur = pullUntil(t, st, cur, "X3")
	require.Len(t, got["M3"].Coupons, 1)
	require.False(t, got["M2"].Flagged)
	require.EqualValues(t, -600, got["M2"].StoredValue)
	require.NotContains(t, got, "M1")

	// A till whose cursor is from before a member's last identity change
	// gets the member there, as it is now, though balance changes came
	// after: a member keeps its place in the feed until it is changed.
	_, err = st.Ingest(c, Batch(a.Sale("M1", T0.Add(7*time.Hour), 1000, 7, 0, 0, "")))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(a.Enrol("X4", T0.Add(7*time.Hour))))
	require.NoError(t, err)
	got, _ = pullUntil(t, st, "", "X4")
	require.EqualValues(t, 17, got["M1"].Points)
	require.Equal(t, "gold", got["M1"].Member.Tier)
	for _, id := range []string{"M1", "M2", "M3", "X1", "X2", "X3", "X4"} {
		require.Contains(t, got, id, "from the start, every member comes once")
	}
	_ = cur
}

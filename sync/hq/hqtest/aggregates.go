package hqtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// Refund refunds amount fen of the sale s, reversing and restoring the
// points given (full: the whole sale at once).
func (t *Till) Refund(s entry.Entry, at time.Time, amount, reversed, restored int64, full bool) entry.Entry {
	e := t.base(entry.KindRefund, s.MemberID, at)
	e.Key = "RF-" + t.key(&e)
	e.PointsDelta = restored - reversed
	e.Refund = &entry.Refund{RefundID: e.Key, SaleKey: s.Key, SaleEntry: s.ID(), Full: full, Amount: amount,
		PointsReversed: reversed, PointsRestored: restored,
		Lines: []entry.RefundLine{{LineNo: 1, Qty: 1, Amount: amount, PointsReversed: reversed, PointsRestored: restored}}}
	return e
}

// VerifyAggregates fails t unless st's KPI aggregates are exactly what a
// recomputation from its entries gives.
func VerifyAggregates(t *testing.T, st hq.Store) {
	t.Helper()
	diffs, err := hq.VerifyAggregates(ctx(t), st)
	require.NoError(t, err)
	require.Empty(t, diffs, "aggregates differ from a recomputation from the entries")
}

// monthSums sums a month's store rows (all stores) and chain rows.
func monthSums(t *testing.T, st hq.Store, month time.Time) (store, chain hq.Counts) {
	t.Helper()
	d := hq.DayOf(month)
	rs, err := st.AggRows(ctx(t), true, d, d)
	require.NoError(t, err)
	for _, r := range rs {
		dst := &store
		if r.Scope == hq.ScopeChain {
			dst = &chain
		} else if r.Scope != hq.ScopeStore {
			continue
		}
		for i, v := range r.N {
			dst[i] += v
		}
	}
	return store, chain
}

// testAggregates: the aggregates follow every way entries arrive (refunds
// and voids before or after their sale, at another till, in a later
// month; resent and overlapping batches; a retried dead letter) and agree
// with a recomputation each time.
func testAggregates(t *testing.T, st hq.Store) {
	c := ctx(t)
	mar := time.Date(2026, 3, 1, 0, 0, 0, 0, Shanghai)
	a := &Till{Store: "S1", Till: "T1"}
	b := &Till{Store: "S1", Till: "T2"}
	d := &Till{Store: "S2", Till: "T1"}

	enrol1, enrol2 := a.Enrol("M1", T0.AddDate(0, -1, 0)), a.Enrol("M2", T0)
	s1 := a.Sale("M1", T0, 10000, 100, 0, 0, "")                 // refunded in full at another till
	s2 := a.Sale("M1", T0.AddDate(0, 0, 3), 8000, 80, 50, 0, "") // partly refunded in April
	s3 := a.Sale("M2", T0.AddDate(0, 0, 1), 3000, 30, 0, 0, "")  // voided
	s4 := a.Sale("", T0, 999, 0, 0, 0, "")                       // not a member's
	s5 := a.Sale("M2", T0.AddDate(0, 0, 5), 5000, 50, 0, 0, "")  // stands
	batch1 := Batch(enrol1, enrol2, s1, s2, s3, s4, s5, a.Void(s3, T0.AddDate(0, 0, 1)))
	_, err := st.Ingest(c, batch1)
	require.NoError(t, err)
	VerifyAggregates(t, st)

	// The full refund arrives from another till of the store.
	_, err = st.Ingest(c, Batch(b.Refund(s1, T0.Add(time.Hour), 10000, 100, 0, true)))
	require.NoError(t, err)
	VerifyAggregates(t, st)
	sums, chain := monthSums(t, st, mar)
	require.EqualValues(t, 2, sums[hq.AggMemberSales], "the refunded and the voided sale do not count")
	require.EqualValues(t, 8000+5000, sums[hq.AggMemberAmount])
	require.EqualValues(t, 80+50, sums[hq.AggPointsIssued])
	require.EqualValues(t, 50, sums[hq.AggPointsRedeemed])
	require.EqualValues(t, 2, chain[hq.AggActive])

	// A partial refund in April nets into March, where the sale is.
	apr := a.Refund(s2, T0.AddDate(0, 1, 0), 2000, 20, 10, false)
	adj := a.Points("M1", T0.AddDate(0, 1, 0), 7, "correction")
	batch2 := Batch(apr, adj)
	_, err = st.Ingest(c, batch2)
	require.NoError(t, err)
	sums, _ = monthSums(t, st, mar)
	require.EqualValues(t, 2, sums[hq.AggMemberSales])
	require.EqualValues(t, 6000+5000, sums[hq.AggMemberAmount])
	require.EqualValues(t, 60+50, sums[hq.AggPointsIssued])
	require.EqualValues(t, 40, sums[hq.AggPointsRedeemed])
	aprSums, _ := monthSums(t, st, mar.AddDate(0, 1, 0))
	require.EqualValues(t, 7, aprSums[hq.AggPointsIssued], "April holds only its own adjustment")
	VerifyAggregates(t, st)

	// Resent batches change nothing; an overlapping one adds only its tail.
	_, err = st.Ingest(c, batch1)
	require.NoError(t, err)
	_, err = st.Ingest(c, batch2)
	require.NoError(t, err)
	s6 := a.Sale("M2", T0.AddDate(0, 0, 6), 1000, 10, 0, 0, "")
	over := Batch(apr, adj, s6)
	_, err = st.Ingest(c, over)
	require.NoError(t, err)
	sums, _ = monthSums(t, st, mar)
	require.EqualValues(t, 3, sums[hq.AggMemberSales], "each entry counted exactly once")
	require.EqualValues(t, 6000+5000+1000, sums[hq.AggMemberAmount])
	VerifyAggregates(t, st)

	// A refund that comes before its sale (another store's till uploads
	// first); the sale arrives as a retried dead letter.
	s7 := d.Sale("M1", T0.AddDate(0, 0, 2), 4000, 40, 0, 0, "")
	rf7 := d.Refund(s7, T0.AddDate(0, 0, 2).Add(time.Minute), 4000, 40, 0, true)
	s8 := d.Sale("M3", T0.AddDate(0, 0, 2), 2500, 25, 0, 0, "")
	db := Batch(s7, rf7, s8)
	db.Items[0] = hq.Item{Seq: s7.Seq, Raw: []byte(`{"kind":"mystery"}`), Reason: "unknown kind"}
	db.Items[2] = hq.Item{Seq: s8.Seq, Raw: []byte(`{"kind":"mystery"}`), Reason: "unknown kind"}
	_, err = st.Ingest(c, db)
	require.NoError(t, err)
	VerifyAggregates(t, st)
	require.NoError(t, st.ResolveDeadLetter(c, "S2", "T1", s8.Seq, s8, T0.UTC()))
	require.NoError(t, st.ResolveDeadLetter(c, "S2", "T1", s7.Seq, s7, T0.UTC()))
	VerifyAggregates(t, st)
	sums, _ = monthSums(t, st, mar)
	require.EqualValues(t, 4, sums[hq.AggMemberSales], "s8 counts; s7 was refunded before it arrived")
	require.EqualValues(t, 6000+5000+1000+2500, sums[hq.AggMemberAmount])

	// Other thresholds: rebuilt from the entries, and still exact.
	cfg := hq.AggConfig{TimeZone: "UTC", AtRiskDays: 3, DormantDays: 9}
	require.NoError(t, st.RebuildAggregates(c, cfg))
	got, err := st.AggConfig(c)
	require.NoError(t, err)
	require.Equal(t, cfg, got)
	VerifyAggregates(t, st)
	again, _ := monthSums(t, st, mar)
	require.Equal(t, sums[:hq.AggMembers], again[:hq.AggMembers], "flows do not depend on the thresholds")
}

// testAggLifetime: a store's lifetime row holds its life-cycle counters
// summed over every day row, through enrolments, sales and refunds over
// two years and a rebuild; AggSpan names the first and last month with
// rows (the at-risk and dormant horizon after the last sale included).
func testAggLifetime(t *testing.T, st hq.Store) {
	c := ctx(t)
	span, err := func() (bool, error) { _, _, ok, err := st.AggSpan(c); return ok, err }()
	require.NoError(t, err)
	require.False(t, span, "no rows, no span")
	// A sale of a member never enrolled: month rows, but no home store, so
	// no life cycle and no lifetime row.
	s0 := &Till{Store: "S0", Till: "T1"}
	feb := time.Date(2024, 2, 10, 10, 0, 0, 0, Shanghai)
	_, err = st.Ingest(c, Batch(s0.Sale("X1", feb, 500, 5, 0, 0, "")))
	require.NoError(t, err)
	first, last, ok, err := st.AggSpan(c)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, [2]hq.Day{hq.DayOf(feb).Month(), hq.DayOf(feb).Month()}, [2]hq.Day{first, last})
	life, err := st.AggRows(c, true, hq.LifetimeDay, hq.LifetimeDay)
	require.NoError(t, err)
	require.Empty(t, life)

	tills := []*Till{{Store: "S1", Till: "T1"}, {Store: "S1", Till: "T2"}, {Store: "S2", Till: "T1"}}
	// From after that sale; lastAct is the last enrolment or sale.
	start := time.Date(2024, 11, 20, 10, 0, 0, 0, Shanghai)
	var lastAct time.Time
	for m := 0; m < 24; m++ {
		var es [3][]entry.Entry
		at := start.AddDate(0, m, 0)
		for i, tl := range tills {
			id := fmt.Sprintf("M%d-%d", m, i)
			es[i] = append(es[i], tl.Enrol(id, at))
			lastAct = at
			if m%3 != 2 { // some never buy, and turn dormant
				s := tl.Sale(id, at.AddDate(0, 0, 1), 1000, 10, 0, 0, "")
				es[i] = append(es[i], s)
				lastAct = at.AddDate(0, 0, 1)
				if m%4 == 0 {
					es[i] = append(es[i], tl.Refund(s, at.AddDate(0, 0, 2), 1000, 10, 0, true))
				}
			}
		}
		for i := range tills {
			_, err := st.Ingest(c, Batch(es[i]...))
			require.NoError(t, err)
		}
	}
	VerifyAggregates(t, st)

	check := func() {
		t.Helper()
		days, err := st.AggRows(c, false, hq.Day(-1<<30), hq.LifetimeDay-1, hq.ScopeStore)
		require.NoError(t, err)
		want := map[string]hq.Counts{}
		for _, r := range days {
			w := want[r.Store]
			for _, i := range []int{hq.AggMembers, hq.AggAtRisk, hq.AggDormant} {
				w[i] += r.N[i]
			}
			want[r.Store] = w
		}
		for id, w := range want {
			if w.Zero() {
				delete(want, id) // a store without a life cycle (S0)
			}
		}
		life, err := st.AggRows(c, true, hq.LifetimeDay, hq.LifetimeDay, hq.ScopeStore)
		require.NoError(t, err)
		got := map[string]hq.Counts{}
		for _, r := range life { // PostgreSQL keeps a row per writing till
			g := got[r.Store]
			for i, v := range r.N {
				g[i] += v
			}
			got[r.Store] = g
		}
		require.Equal(t, want, got)
		require.EqualValues(t, 24*2, got["S1"][hq.AggMembers])

		first, last, ok, err := st.AggSpan(c)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, hq.DayOf(feb).Month(), first)
		cfg, err := st.AggConfig(c)
		require.NoError(t, err)
		horizon := hq.DayOf(lastAct.In(Shanghai)) + hq.Day(cfg.DormantDays)
		require.Equal(t, horizon.Month(), last, "the month the last member seen turns dormant")
	}
	check()
	require.NoError(t, st.RebuildAggregates(c, hq.AggConfig{TimeZone: "Asia/Shanghai", AtRiskDays: 30, DormantDays: 90}))
	VerifyAggregates(t, st)
	check()
}

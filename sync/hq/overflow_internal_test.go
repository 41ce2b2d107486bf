package hq

import (
	"math"
	"testing"

	"posagent/ledger/entry"
)

func TestRatioNeverOverflows(t *testing.T) {
	for _, c := range []struct{ num, mul, den, want int64 }{
		{1, 10000, 3, 3333},
		{2, 10000, 3, 6667}, // half up
		{5, 1, 2, 3},
		{0, 10000, 7, 0},
		{7, 10000, 0, 0},
		// A chain that issued 10^16 points and saw half redeemed: the
		// product 5·10^19 is beyond int64, the rate is 50 %.
		{5e15, 10000, 1e16, 5000},
		{math.MaxInt64, 10000, math.MaxInt64, 10000},
		{math.MaxInt64, 10000, 1, math.MaxInt64}, // saturates
		{math.MaxInt64, 1, math.MaxInt64, 1},
	} {
		if got := ratio(c.num, c.mul, c.den); got != c.want {
			t.Errorf("ratio(%d, %d, %d) = %d, want %d", c.num, c.mul, c.den, got, c.want)
		}
	}
}

func TestSumSaturatesAndFlags(t *testing.T) {
	var s int64 = math.MaxInt64 - 1
	var over bool
	sum(&s, 1, &over)
	if s != math.MaxInt64 || over {
		t.Fatalf("sum = %d, over %v", s, over)
	}
	sum(&s, 1, &over)
	if s != math.MaxInt64 || !over {
		t.Fatalf("past the limit: sum = %d, over %v; want the limit, flagged", s, over)
	}
	s, over = math.MinInt64+1, false
	sum(&s, -5, &over)
	if s != math.MinInt64 || !over {
		t.Fatalf("below the limit: sum = %d, over %v", s, over)
	}
}

func TestTotalsNeverWrap(t *testing.T) {
	var tot StoreTotals
	e := entry.Entry{PointsDelta: math.MaxInt64, StoredValueDelta: math.MinInt64}
	tot.add(&e)
	tot.add(&e)
	if tot.Points != math.MaxInt64 || tot.StoredValue != math.MinInt64 || !tot.Overflow {
		t.Fatalf("totals %+v: want the limits, flagged", tot)
	}
}

func TestApplyBalancesRefusesOverflow(t *testing.T) {
	m := Member{ID: "M1", Points: math.MaxInt64 - 10, StoredValue: -5}
	if err := m.ApplyBalances(Delta{Points: 11}); err == nil || m.Points != math.MaxInt64-10 {
		t.Fatalf("ApplyBalances = %v, points %d: want ErrOverflow and no change", err, m.Points)
	}
	if err := m.ApplyBalances(Delta{StoredValue: math.MinInt64}); err == nil || m.StoredValue != -5 {
		t.Fatalf("ApplyBalances = %v, stored value %d", err, m.StoredValue)
	}
	if err := m.ApplyBalances(Delta{Points: 10, StoredValue: 5}); err != nil || m.Points != math.MaxInt64 || m.StoredValue != 0 {
		t.Fatalf("ApplyBalances = %v, %+v", err, m)
	}
}

func TestSettleSetsAsideOnlyWhatDoesNotFit(t *testing.T) {
	pts := func(seq uint64, p, sv int64) Item {
		return Item{Seq: seq, Entry: &entry.Entry{Store: "S1", Till: "T1", Seq: seq, Kind: entry.KindPointsAdjust, MemberID: "M1", PointsDelta: p, StoredValueDelta: sv}}
	}
	b := Batch{Store: "S1", Till: "T1", First: 1, Last: 5, Items: []Item{
		pts(1, 5, 0), pts(2, math.MaxInt64, 0), pts(3, -7, 0), pts(4, 0, math.MinInt64), pts(5, 0, -1),
	}}
	out, n := Settle(b, 0, map[string]Balance{"M1": {Points: 10, StoredValue: -1}})
	if n != 2 || out.Items[1].Entry != nil || out.Items[3].Entry != nil || out.Items[0].Entry == nil || out.Items[2].Entry == nil || out.Items[4].Entry == nil {
		t.Fatalf("Settle set aside %d: %+v", n, out.Items)
	}
	if b.Items[1].Entry == nil {
		t.Fatal("Settle changed the batch it was given")
	}
	es, _ := Fresh(out, 0)
	ds, err := Deltas(es)
	if err != nil || ds[0].Points != -2 || ds[0].StoredValue != -1 {
		t.Fatalf("Deltas after Settle = %+v, %v", ds, err)
	}
	// Without the balances' room the fold itself is checked too.
	if _, err := Deltas([]entry.Entry{*pts(1, math.MaxInt64, 0).Entry, *pts(2, 1, 0).Entry}); err == nil {
		t.Fatal("Deltas folded past int64")
	}
}

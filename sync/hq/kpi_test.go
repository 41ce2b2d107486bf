package hq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

func day(m time.Month, d, y int) time.Time {
	return time.Date(y, m, d, 11, 0, 0, 0, hqtest.Shanghai)
}

// kpiData builds a small chain whose March 2026 figures are worked out by
// hand in TestKPIs.
func kpiData(t *testing.T, e *env) {
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	b := &hqtest.Till{Store: "S2", Till: "T1"}
	var as, bs []entry.Entry
	add := func(tl *hqtest.Till, cashier string, mk func() entry.Entry) entry.Entry {
		tl.Cashier = cashier
		x := mk()
		if tl == a {
			as = append(as, x)
		} else {
			bs = append(bs, x)
		}
		return x
	}
	// M3: enrolled at S1 in October, last bought 15 Dec → at risk on 31 Mar.
	add(a, "ca1", func() entry.Entry { return a.Enrol("M3", day(10, 1, 2025)) })
	add(a, "ca2", func() entry.Entry { return a.Sale("M3", day(12, 15, 2025), 3000, 30, 0, 0, "") })
	// M4: enrolled at S2 in June 2025, never bought → dormant.
	add(b, "cb1", func() entry.Entry { return b.Enrol("M4", day(6, 1, 2025)) })
	// M2: enrolled at S2 in January.
	add(b, "cb1", func() entry.Entry { return b.Enrol("M2", day(1, 10, 2026)) })
	// M1: new in March at S1, buys twice there within 30 days.
	add(a, "ca1", func() entry.Entry { return a.Enrol("M1", day(3, 2, 2026)) })
	add(a, "ca2", func() entry.Entry { return a.Sale("M1", day(3, 5, 2026), 10000, 100, 0, 0, "") })
	add(a, "ca2", func() entry.Entry { return a.Sale("", day(3, 6, 2026), 999, 0, 0, 0, "") }) // not a member
	add(a, "ca2", func() entry.Entry { return a.Sale("M1", day(3, 20, 2026), 5000, 50, 200, 0, "") })
	// M2 buys at S2, is upgraded (+100), buys at S1, and again at S2 in April.
	add(b, "cb1", func() entry.Entry { return b.Sale("M2", day(3, 10, 2026), 20000, 200, 0, 0, "") })
	add(b, "cb1", func() entry.Entry { return b.Points("M2", day(3, 10, 2026), 100, "tier_upgrade") })
	add(a, "ca2", func() entry.Entry { return a.Sale("M2", day(3, 25, 2026), 4000, 40, 0, 0, "") })
	add(b, "cb1", func() entry.Entry { return b.Sale("M2", day(4, 5, 2026), 6000, 60, 0, 0, "") })
	// M5: new at S2 late March; the one sale is voided.
	add(b, "cb2", func() entry.Entry { return b.Enrol("M5", day(3, 28, 2026)) })
	s5 := add(b, "cb2", func() entry.Entry { return b.Sale("M5", day(3, 29, 2026), 3000, 30, 0, 0, "") })
	add(b, "cb2", func() entry.Entry { return b.Void(s5, day(3, 29, 2026)) })
	// M1 again in April: outside March.
	add(a, "ca2", func() entry.Entry { return a.Sale("M1", day(4, 2, 2026), 7000, 70, 0, 0, "") })

	for _, x := range []struct {
		store string
		es    []entry.Entry
	}{{"S1", as}, {"S2", bs}} {
		code, _, werr := e.upload(e.store[x.store], batchOf(x.es...))
		require.Equal(t, http.StatusOK, code, werr.Message)
	}
}

func TestKPIs(t *testing.T) {
	now := time.Date(2026, 4, 15, 9, 0, 0, 0, hqtest.Shanghai)
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }}, nil)
	kpiData(t, e)

	code, body, _ := e.do("GET", "/kpi?format=json&month=2026-03", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var rep hq.KPIReport
	require.NoError(t, json.Unmarshal(body, &rep))

	require.Equal(t, "2026-03", rep.Month)
	require.Equal(t, time.Date(2026, 3, 31, 15, 59, 59, 999999999, time.UTC), rep.AsOf)
	require.Equal(t, hq.KPI{
		Members: 5, NewMembers: 2, ActiveMembers: 2, Repurchasers: 2, RepurchaseBP: 10000,
		MemberSales: 4, MemberSalesAmount: 39000, AvgTicket: 9750,
		PointsIssued: 490, PointsRedeemed: 200, RedemptionBP: 4082, // 200/490 = 40.816 %
		AtRisk: 1, Dormant: 1,
	}, rep.Chain)
	require.Equal(t, []hq.KPI{
		{Store: "S1", Members: 2, NewMembers: 1, ActiveMembers: 2, Repurchasers: 1, RepurchaseBP: 5000,
			MemberSales: 3, MemberSalesAmount: 19000, AvgTicket: 6333,
			PointsIssued: 190, PointsRedeemed: 200, RedemptionBP: 10526, AtRisk: 1},
		{Store: "S2", Members: 3, NewMembers: 1, ActiveMembers: 1, Repurchasers: 1, RepurchaseBP: 10000,
			MemberSales: 1, MemberSalesAmount: 20000, AvgTicket: 20000,
			PointsIssued: 300, Dormant: 1},
	}, rep.Stores)
	require.Equal(t, []hq.CashierKPI{
		{Store: "S1", Cashier: "ca1", Enrolments: 1},
		{Store: "S1", Cashier: "ca2", PointsIssued: 190},
		{Store: "S2", Cashier: "cb1", PointsIssued: 300},
		{Store: "S2", Cashier: "cb2", Enrolments: 1},
	}, rep.Cashiers)

	code, body, _ = e.do("GET", "/kpi?format=html&month=2026-03", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	page := string(body)
	require.Contains(t, page, "<svg")
	require.Contains(t, page, "Repurchase rate")
	require.Contains(t, page, "<td>97.50</td>") // chain average ticket in yuan
	require.NotContains(t, page, "http://", "no external resources")

	code, body, _ = e.do("GET", "/kpi?format=text&month=2026-03", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	text := string(body)
	require.Contains(t, text, "CHAIN")
	require.Contains(t, text, "40.82%")
	require.True(t, strings.Contains(text, "cb2"))

	code, _, _ = e.do("GET", "/kpi?month=March", adminToken, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
}

// TestKPIsNetRefundsAndVoids: a sale refunded in full is no member sale
// (average ticket, points issued, visits), a partial refund nets its
// amount and points into the sale's month even when it comes later.
func TestKPIsNetRefundsAndVoids(t *testing.T) {
	now := time.Date(2026, 4, 15, 9, 0, 0, 0, hqtest.Shanghai)
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }}, nil)
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	var es []entry.Entry
	add := func(x entry.Entry) entry.Entry { es = append(es, x); return x }
	add(a.Enrol("M1", day(2, 1, 2026)))
	full := add(a.Sale("M1", day(3, 5, 2026), 10000, 100, 0, 0, ""))
	part := add(a.Sale("M1", day(3, 20, 2026), 8000, 80, 0, 0, ""))
	add(a.Refund(full, day(3, 6, 2026), 10000, 100, 0, true))
	add(a.Refund(part, day(4, 2, 2026), 2000, 20, 0, false))
	code, _, werr := e.upload(e.store["S1"], batchOf(es...))
	require.Equal(t, http.StatusOK, code, werr.Message)

	code, body, _ := e.do("GET", "/kpi?format=json&month=2026-03", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var rep hq.KPIReport
	require.NoError(t, json.Unmarshal(body, &rep))
	require.Equal(t, hq.KPI{Members: 1, ActiveMembers: 1, MemberSales: 1, MemberSalesAmount: 6000, AvgTicket: 6000,
		PointsIssued: 60}, rep.Chain, "the refunded sale is gone; the partial refund nets")
	require.Equal(t, []hq.CashierKPI{{Store: "S1", Cashier: "c1", PointsIssued: 60}}, rep.Cashiers)
}

// aggReads records the month rows a report reads.
type aggReads struct {
	hq.Store
	mu     sync.Mutex
	months [][2]hq.Day
}

func (r *aggReads) AggRows(ctx context.Context, months bool, from, to hq.Day, scopes ...string) ([]hq.AggRow, error) {
	if months {
		r.mu.Lock()
		r.months = append(r.months, [2]hq.Day{from, to})
		r.mu.Unlock()
	}
	return r.Store.AggRows(ctx, months, from, to, scopes...)
}

// TestKPILifeCycleOverYears: over two and a half years of enrolments and
// sales, every month's members, at-risk and dormant counts (per store and
// chain) equal the store's day rows summed up to the report's as-of day,
// whichever side of it the report reads; and the current month's report
// reads no month row before it, however long the history.
func TestKPILifeCycleOverYears(t *testing.T) {
	now := time.Date(2026, 6, 15, 9, 0, 0, 0, hqtest.Shanghai)
	var reads *aggReads
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }, AtRiskDays: 45, DormantDays: 120},
		func(s hq.Store) hq.Store { reads = &aggReads{Store: s}; return reads })
	tills := map[string]*hqtest.Till{"S1": {Store: "S1", Till: "T1"}, "S2": {Store: "S2", Till: "T1"}}
	start := time.Date(2024, 1, 5, 10, 0, 0, 0, hqtest.Shanghai)
	for m := 0; m < 30; m++ {
		by := map[string][]entry.Entry{}
		at := start.AddDate(0, m, 0)
		for i := 0; i < 4; i++ {
			st := []string{"S1", "S2"}[(m+i)%2]
			id := fmt.Sprintf("M%02d-%d", m, i)
			by[st] = append(by[st], tills[st].Enrol(id, at.AddDate(0, 0, i)))
			if (m+i)%3 != 0 { // the others never buy
				by[st] = append(by[st], tills[st].Sale(id, at.AddDate(0, 0, i+2), 1000, 10, 0, 0, ""))
			}
			if m > 0 && i == 0 { // an earlier member comes back
				old := fmt.Sprintf("M%02d-1", m-1)
				by[st] = append(by[st], tills[st].Sale(old, at.AddDate(0, 0, 9), 2000, 20, 0, 0, ""))
			}
		}
		for st, es := range by {
			code, _, werr := e.upload(e.store[st], batchOf(es...))
			require.Equal(t, http.StatusOK, code, werr.Message)
		}
	}
	hqtest.VerifyAggregates(t, e.st)

	ctx := context.Background()
	ways := map[bool]int{}
	for mt := start.AddDate(0, -2, 0); mt.Before(now.AddDate(0, 10, 0)); mt = mt.AddDate(0, 1, 0) {
		month := mt.Format("2006-01")
		reads.mu.Lock()
		reads.months = nil
		reads.mu.Unlock()
		code, body, _ := e.do("GET", "/kpi?format=json&month="+month, adminToken, nil, nil)
		require.Equal(t, http.StatusOK, code, string(body))
		var rep hq.KPIReport
		require.NoError(t, json.Unmarshal(body, &rep))

		asOf := hq.DayOf(rep.AsOf.In(hqtest.Shanghai))
		rows, err := e.st.AggRows(ctx, false, hq.Day(-1<<30), asOf, hq.ScopeStore)
		require.NoError(t, err)
		want := map[string][3]int{}
		var chain [3]int
		for _, r := range rows {
			w := want[r.Store]
			for j, c := range []int{hq.AggMembers, hq.AggAtRisk, hq.AggDormant} {
				w[j] += int(r.N[c])
				chain[j] += int(r.N[c])
			}
			want[r.Store] = w
		}
		got := map[string][3]int{}
		for _, k := range rep.Stores {
			if k.Members != 0 || k.AtRisk != 0 || k.Dormant != 0 {
				got[k.Store] = [3]int{k.Members, k.AtRisk, k.Dormant}
			}
		}
		for st, w := range want {
			if w == [3]int{} {
				delete(want, st)
			}
		}
		require.Equal(t, want, got, "month %s", month)
		require.Equal(t, chain, [3]int{rep.Chain.Members, rep.Chain.AtRisk, rep.Chain.Dormant}, "month %s", month)

		backward := false
		for _, r := range reads.months {
			backward = backward || r[1] == hq.LifetimeDay
		}
		ways[backward]++
		if month == now.Format("2006-01") {
			require.True(t, backward, "the current month reads the lifetime rows")
			for _, r := range reads.months {
				require.GreaterOrEqual(t, r[0], hq.DayOf(mt).Month(), "the current month's report read month rows from %v", r[0])
			}
		}
	}
	require.Positive(t, ways[true], "reports that read backward from the lifetime rows")
	require.Positive(t, ways[false], "reports that read forward")
}

package hq_test

import (
	"encoding/json"
	"net/http"
	"strings"
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

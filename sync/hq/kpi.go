package hq

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"net/http"
	"sort"
	"time"

	"posagent/ledger/entry"
)

// KPI is one store's (or the chain's) member figures for a month. Rates are
// basis points (1/100 of a percent), amounts fen, both rounded half up.
type KPI struct {
	Store             string `json:"store,omitempty"` // "" for the chain
	Members           int    `json:"members"`         // enrolled by the end of the month (home store)
	NewMembers        int    `json:"new_members"`
	ActiveMembers     int    `json:"active_members"`
	Repurchasers      int    `json:"repurchasers"`
	RepurchaseBP      int64  `json:"repurchase_bp"`
	MemberSales       int    `json:"member_sales"`
	MemberSalesAmount int64  `json:"member_sales_amount"`
	AvgTicket         int64  `json:"avg_ticket"`
	PointsIssued      int64  `json:"points_issued"`
	PointsRedeemed    int64  `json:"points_redeemed"`
	RedemptionBP      int64  `json:"redemption_bp"`
	AtRisk            int    `json:"at_risk"`
	Dormant           int    `json:"dormant"`
	// Overflow: a sum left the int64 range and is shown at its limit.
	Overflow bool `json:"overflow,omitempty"`
}

// CashierKPI is what one cashier did in the month; staff judged on sign-ups
// have fabricated members, so HQ watches these.
type CashierKPI struct {
	Store        string `json:"store"`
	Cashier      string `json:"cashier"`
	Enrolments   int    `json:"enrolments"`
	PointsIssued int64  `json:"points_issued"`
	Overflow     bool   `json:"overflow,omitempty"` // PointsIssued is at the int64 limit
}

// KPIReport is the month's KPIs, chain-wide and per store.
type KPIReport struct {
	Month       string       `json:"month"` // YYYY-MM
	TimeZone    string       `json:"time_zone"`
	AsOf        time.Time    `json:"as_of"` // life-cycle counts are as of this instant
	AtRiskDays  int          `json:"at_risk_days"`
	DormantDays int          `json:"dormant_days"`
	Chain       KPI          `json:"chain"`
	Stores      []KPI        `json:"stores"`
	Cashiers    []CashierKPI `json:"cashiers"`
}

type kpiSale struct {
	store string
	at    time.Time
}

// KPIs computes the report for month "YYYY-MM" ("" = the current month).
// An entry belongs to the month of its store-local wall clock.
func (s *Server) KPIs(ctx context.Context, month string) (*KPIReport, error) {
	now := s.o.Now()
	if month == "" {
		month = now.In(s.loc).Format("2006-01")
	}
	start, err := time.ParseInLocation("2006-01", month, s.loc)
	if err != nil {
		return nil, fmt.Errorf("hq: month %q: want YYYY-MM", month)
	}
	end := start.AddDate(0, 1, 0)
	asOf := end.Add(-time.Nanosecond)
	if now.Before(asOf) {
		asOf = now
	}
	rep := &KPIReport{Month: month, TimeZone: s.loc.String(), AsOf: asOf.UTC(), AtRiskDays: s.o.AtRiskDays, DormantDays: s.o.DormantDays}

	inMonth := func(e *entry.Entry) bool {
		if t, err := time.Parse(time.RFC3339, e.Local); err == nil {
			// The store's own wall clock decides the month.
			return t.Format("2006-01") == month
		}
		l := e.At.In(s.loc)
		return !l.Before(start) && l.Before(end)
	}
	stores := map[string]*KPI{}
	store := func(id string) *KPI {
		k := stores[id]
		if k == nil {
			k = &KPI{Store: id}
			stores[id] = k
		}
		return k
	}
	cashiers := map[[2]string]*CashierKPI{}
	cashier := func(st, c string) *CashierKPI {
		k := cashiers[[2]string{st, c}]
		if k == nil {
			k = &CashierKPI{Store: st, Cashier: c}
			cashiers[[2]string{st, c}] = k
		}
		return k
	}
	var sales []*entry.Entry
	voided := map[string]bool{}
	home := map[string]string{}           // member → enrolling store
	enrolled := map[string]time.Time{}    // member → enrolment time
	memberSales := map[string][]kpiSale{} // member → counted sales (any month)
	err = s.st.Scan(ctx, func(x Stored) error {
		e := x.Entry
		switch {
		case e.Sale != nil:
			sales = append(sales, &e)
		case e.Void != nil:
			voided[e.Void.SaleEntry] = true
		case e.Enrol != nil:
			id := e.MemberID
			if id == "" {
				id = e.Enrol.Member.ID
			}
			home[id], enrolled[id] = e.Store, e.At
			store(e.Store)
			if inMonth(&e) {
				rep.Chain.NewMembers++
				store(e.Store).NewMembers++
				cashier(e.Store, e.Cashier).Enrolments++
			}
		case e.Points != nil && e.Kind == entry.KindPointsAdjust && e.Points.Points > 0:
			if inMonth(&e) {
				sum(&rep.Chain.PointsIssued, e.Points.Points, &rep.Chain.Overflow)
				k := store(e.Store)
				sum(&k.PointsIssued, e.Points.Points, &k.Overflow)
				c := cashier(e.Store, e.Cashier)
				sum(&c.PointsIssued, e.Points.Points, &c.Overflow)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Members active in the month, chain-wide and per store, with their
	// first sale of the month in that scope.
	firstChain := map[string]time.Time{}
	firstStore := map[[2]string]time.Time{}
	for _, e := range sales {
		if voided[e.ID()] {
			continue // a voided sale never happened
		}
		k := store(e.Store)
		if e.MemberID != "" {
			memberSales[e.MemberID] = append(memberSales[e.MemberID], kpiSale{e.Store, e.At})
		}
		if !inMonth(e) {
			continue
		}
		sum(&k.PointsIssued, e.Sale.PointsEarned, &k.Overflow)
		sum(&rep.Chain.PointsIssued, e.Sale.PointsEarned, &rep.Chain.Overflow)
		if e.Sale.PointsEarned != 0 {
			c := cashier(e.Store, e.Cashier)
			sum(&c.PointsIssued, e.Sale.PointsEarned, &c.Overflow)
		}
		sum(&k.PointsRedeemed, e.Sale.RedeemPoints, &k.Overflow)
		sum(&rep.Chain.PointsRedeemed, e.Sale.RedeemPoints, &rep.Chain.Overflow)
		if e.MemberID == "" {
			continue
		}
		k.MemberSales++
		sum(&k.MemberSalesAmount, e.Sale.Due, &k.Overflow)
		rep.Chain.MemberSales++
		sum(&rep.Chain.MemberSalesAmount, e.Sale.Due, &rep.Chain.Overflow)
		if t, ok := firstChain[e.MemberID]; !ok || e.At.Before(t) {
			firstChain[e.MemberID] = e.At
		}
		sk := [2]string{e.Store, e.MemberID}
		if t, ok := firstStore[sk]; !ok || e.At.Before(t) {
			firstStore[sk] = e.At
		}
	}
	const window = 30 * 24 * time.Hour
	repurchased := func(member, st string, first time.Time) bool {
		for _, x := range memberSales[member] {
			if (st == "" || x.store == st) && x.at.After(first) && !x.at.After(first.Add(window)) {
				return true
			}
		}
		return false
	}
	for m, t := range firstChain {
		rep.Chain.ActiveMembers++
		if repurchased(m, "", t) {
			rep.Chain.Repurchasers++
		}
	}
	for sk, t := range firstStore {
		k := store(sk[0])
		k.ActiveMembers++
		if repurchased(sk[1], sk[0], t) {
			k.Repurchasers++
		}
	}
	// Life cycle as of the end of the month, by the member's home store.
	for m, at := range enrolled {
		if at.After(asOf) {
			continue
		}
		last := at
		for _, x := range memberSales[m] {
			if x.at.After(last) && !x.at.After(asOf) {
				last = x.at
			}
		}
		k := store(home[m])
		k.Members++
		rep.Chain.Members++
		switch d := localDays(last, asOf, s.loc); {
		case d >= s.o.DormantDays:
			k.Dormant++
			rep.Chain.Dormant++
		case d >= s.o.AtRiskDays:
			k.AtRisk++
			rep.Chain.AtRisk++
		}
	}
	finish := func(k *KPI) {
		k.RepurchaseBP = ratio(int64(k.Repurchasers), 10000, int64(k.ActiveMembers))
		k.AvgTicket = ratio(k.MemberSalesAmount, 1, int64(k.MemberSales))
		k.RedemptionBP = ratio(k.PointsRedeemed, 10000, k.PointsIssued)
	}
	finish(&rep.Chain)
	rep.Stores = []KPI{}
	for _, k := range stores {
		finish(k)
		rep.Stores = append(rep.Stores, *k)
	}
	sort.Slice(rep.Stores, func(i, j int) bool { return rep.Stores[i].Store < rep.Stores[j].Store })
	rep.Cashiers = []CashierKPI{}
	for _, c := range cashiers {
		rep.Cashiers = append(rep.Cashiers, *c)
	}
	sort.Slice(rep.Cashiers, func(i, j int) bool {
		a, b := rep.Cashiers[i], rep.Cashiers[j]
		if a.Store != b.Store {
			return a.Store < b.Store
		}
		return a.Cashier < b.Cashier
	})
	return rep, nil
}

// sum adds v to *dst; a sum that would leave the int64 range stays at the
// limit and sets *over, so a report never shows a wrapped figure.
func sum(dst *int64, v int64, over *bool) {
	s, ok := add(*dst, v)
	if !ok {
		s = math.MaxInt64
		if v < 0 {
			s = math.MinInt64
		}
		*over = true
	}
	*dst = s
}

// ratio is num·mul/den rounded half up, 0 when num or den is not
// positive, at most MaxInt64. Worked in 128 bits: num·mul overflows int64
// long before a chain's points do (10,000 × 10^15).
func ratio(num, mul, den int64) int64 {
	if num <= 0 || mul <= 0 || den <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(num), uint64(mul)) // < 2^126
	hi, lo = hi<<1|lo>>63, lo<<1                   // 2·num·mul
	lo, c := bits.Add64(lo, uint64(den), 0)        // + den
	hi += c
	d := 2 * uint64(den) // < 2^64
	if hi >= d {
		return math.MaxInt64 // the quotient needs more than 64 bits
	}
	q, _ := bits.Div64(hi, lo, d)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

func (s *Server) handleKPI(w http.ResponseWriter, r *http.Request) {
	rep, err := s.KPIs(r.Context(), r.URL.Query().Get("month"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		writeJSON(w, http.StatusOK, rep)
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = rep.HTML(w)
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = rep.Text(w)
	default:
		writeError(w, http.StatusBadRequest, "bad_format", "format must be json, html or text")
	}
}

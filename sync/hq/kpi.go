package hq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/http"
	"sort"
	"strings"
	"time"
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

// aggConfig is the aggregate configuration the server's options ask for.
func (s *Server) aggConfig() AggConfig {
	return AggConfig{TimeZone: s.loc.String(), AtRiskDays: s.o.AtRiskDays, DormantDays: s.o.DormantDays}
}

// KPIs computes the report for month "YYYY-MM" ("" = the current month)
// from the aggregates kept at ingest: the month's rows, the earlier
// months' life-cycle rows and, while the month is not over, its days up
// to today. An entry belongs to the day (and month) of its store-local
// wall clock.
func (s *Server) KPIs(ctx context.Context, month string) (*KPIReport, error) {
	now := s.o.Now()
	if month == "" {
		month = now.In(s.loc).Format("2006-01")
	}
	start, err := time.ParseInLocation("2006-01", month, s.loc)
	if err != nil {
		return nil, fmt.Errorf("%w: month %q: want YYYY-MM", errBadRequest, month)
	}
	end := start.AddDate(0, 1, 0)
	asOf := end.Add(-time.Nanosecond)
	if now.Before(asOf) {
		asOf = now
	}
	rep := &KPIReport{Month: month, TimeZone: s.loc.String(), AsOf: asOf.UTC(), AtRiskDays: s.o.AtRiskDays, DormantDays: s.o.DormantDays}

	// Rows built with other thresholds or zone are rebuilt once.
	cfg := s.aggConfig()
	have, err := s.st.AggConfig(ctx)
	if err != nil {
		return nil, err
	}
	if have != cfg {
		s.o.Log.Info("rebuilding KPI aggregates for new settings", "was", have, "now", cfg)
		if err := s.st.RebuildAggregates(ctx, cfg); err != nil {
			return nil, fmt.Errorf("hq: rebuilding aggregates: %w", err)
		}
	}
	first := DayOf(start)
	cur, err := s.st.AggRows(ctx, true, first, first)
	if err != nil {
		return nil, err
	}
	life, err := s.lifeRows(ctx, DayOf(asOf.In(s.loc)), first, cur)
	if err != nil {
		return nil, err
	}
	s.kpiFromRows(rep, cur, life)
	return rep, nil
}

// minDay is before any day a row can have.
const minDay = Day(-1 << 30)

// lifeRows are store rows whose life-cycle counters sum to the life cycle
// as of day asOf (the month's rows, cur, when the report is of month
// first). Whichever side of asOf has fewer months is read: the rows up to
// it, or the lifetime rows less the rows after it (negated). A report of
// a recent month so reads the months up to the at-risk and dormant
// horizon ahead, however long the chain's history.
func (s *Server) lifeRows(ctx context.Context, asOf, first Day, cur []AggRow) ([]AggRow, error) {
	from, last, ok, err := s.st.AggSpan(ctx)
	if err != nil || !ok {
		return nil, err
	}
	month := asOf.Month()
	days := func(lo, hi Day) ([]AggRow, error) {
		if lo > hi {
			return nil, nil
		}
		if lo == month && hi == month.NextMonth()-1 && month == first {
			return cur, nil // the whole month: its month rows
		}
		return s.st.AggRows(ctx, false, lo, hi, ScopeStore)
	}
	if last-month >= month-from {
		// Forward: every month before asOf's, and its days up to asOf.
		ms, err := s.st.AggRows(ctx, true, minDay, month-1, ScopeStore)
		if err != nil {
			return nil, err
		}
		ds, err := days(month, asOf)
		return append(ms, ds...), err
	}
	// Backward: the lifetime rows less the later months and days.
	ms, err := s.st.AggRows(ctx, true, month.NextMonth(), LifetimeDay, ScopeStore)
	if err != nil {
		return nil, err
	}
	ds, err := days(asOf+1, month.NextMonth()-1)
	if err != nil {
		return nil, err
	}
	out := make([]AggRow, 0, len(ms)+len(ds))
	for _, r := range append(ms, ds...) {
		if r.Day != LifetimeDay {
			for _, i := range lifeCounters {
				r.N[i] = -r.N[i]
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// kpiFromRows fills rep from the month's rows and the life-cycle rows up
// to its as-of day.
func (s *Server) kpiFromRows(rep *KPIReport, month, life []AggRow) {
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
	var lc [AggCounters]int64 // chain life-cycle sums
	for _, r := range month {
		switch r.Scope {
		case ScopeChain:
			rep.Chain.ActiveMembers += int(r.N[AggActive])
			rep.Chain.Repurchasers += int(r.N[AggRepurchasers])
		case ScopeCashier:
			if r.N[AggEnrolments] == 0 && r.N[AggPointsIssued] == 0 {
				continue
			}
			c := cashiers[[2]string{r.Store, r.Cashier}]
			if c == nil {
				c = &CashierKPI{Store: r.Store, Cashier: r.Cashier}
				cashiers[[2]string{r.Store, r.Cashier}] = c
			}
			c.Enrolments += int(r.N[AggEnrolments])
			sum(&c.PointsIssued, r.N[AggPointsIssued], &c.Overflow)
		case ScopeStore:
			k := store(r.Store)
			for _, t := range []*KPI{k, &rep.Chain} {
				t.NewMembers += int(r.N[AggNewMembers])
				t.MemberSales += int(r.N[AggMemberSales])
				sum(&t.MemberSalesAmount, r.N[AggMemberAmount], &t.Overflow)
				sum(&t.PointsIssued, r.N[AggPointsIssued], &t.Overflow)
				sum(&t.PointsRedeemed, r.N[AggPointsRedeemed], &t.Overflow)
			}
			k.ActiveMembers += int(r.N[AggActive])
			k.Repurchasers += int(r.N[AggRepurchasers])
		}
	}
	for _, r := range life {
		if r.Scope != ScopeStore || (r.N[AggMembers] == 0 && r.N[AggAtRisk] == 0 && r.N[AggDormant] == 0) {
			continue
		}
		k := store(r.Store)
		k.Members += int(r.N[AggMembers])
		k.AtRisk += int(r.N[AggAtRisk])
		k.Dormant += int(r.N[AggDormant])
		lc[AggMembers] += r.N[AggMembers]
		lc[AggAtRisk] += r.N[AggAtRisk]
		lc[AggDormant] += r.N[AggDormant]
	}
	rep.Chain.Members, rep.Chain.AtRisk, rep.Chain.Dormant = int(lc[AggMembers]), int(lc[AggAtRisk]), int(lc[AggDormant])
	finish := func(k *KPI) {
		k.RepurchaseBP = ratio(int64(k.Repurchasers), 10000, int64(k.ActiveMembers))
		k.AvgTicket = ratio(k.MemberSalesAmount, 1, int64(k.MemberSales))
		k.RedemptionBP = ratio(k.PointsRedeemed, 10000, k.PointsIssued)
	}
	finish(&rep.Chain)
	rep.Stores = []KPI{}
	for _, k := range stores {
		if *k == (KPI{Store: k.Store}) {
			continue // only zero rows (e.g. everything reversed)
		}
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
	switch {
	case errors.Is(err, errBadRequest):
		writeError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
		return
	case err != nil:
		// A storage failure is HQ's, not the caller's: worth a retry.
		s.o.Log.Error("kpi report", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "reading the KPI aggregates failed; try again")
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

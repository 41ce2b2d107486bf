package hq

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"posagent/ledger/entry"
)

// Aggregates kept at ingest. The transaction that stores a batch also folds
// its entries (Fold) into per-day counter rows and into the facts the
// counters are derived from (one record per sale that matters, one per
// member). A month's KPI report reads that month's rows, the earlier
// months' life-cycle rows (one per store and month) and, for the current
// month, its days so far: never the entries.
//
// Every figure is a difference: the counters a fact contributes are
// subtracted before it changes and added again afterwards. A refund or a
// void therefore changes the figures of the day and store of the sale it
// reverses, whenever it arrives, and the result does not depend on the
// order entries arrive in: recomputing everything from the stored entries
// (RecomputeAggregates) must give exactly the rows the stores hold.

// Day is a local calendar day, counted from 1970-01-01.
type Day int32

// DayOf is t's calendar date in t's own location.
func DayOf(t time.Time) Day {
	u := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return Day(u.Unix() / 86400)
}

// Time is midnight UTC of the day (for its calendar fields).
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// Month is the first day of d's month.
func (d Day) Month() Day {
	t := d.Time()
	return DayOf(time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC))
}

// NextMonth is the first day of the month after d's.
func (d Day) NextMonth() Day {
	t := d.Time()
	return DayOf(time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC))
}

func (d Day) String() string { return d.Time().Format("2006-01-02") }

// EntryDay is the store-local day of an entry: the date of its Local wall
// clock, or of At in loc when Local is missing or unreadable.
func EntryDay(e *entry.Entry, loc *time.Location) Day {
	if t, err := time.Parse(time.RFC3339, e.Local); err == nil {
		return DayOf(t)
	}
	return DayOf(e.At.In(loc))
}

// Aggregate counters, the columns of a row.
const (
	AggNewMembers     = iota // enrolments (store rows)
	AggMemberSales           // member sales not voided nor fully refunded
	AggMemberAmount          // their Due less what was refunded, fen
	AggPointsIssued          // earned less reversed, plus positive adjustments
	AggPointsRedeemed        // redeemed less restored
	AggActive                // members whose first sale of the month (in the row's scope) is that day
	AggRepurchasers          // those of them who bought again within 30 days
	AggMembers               // life cycle, as day differences: +1 on enrolment
	AggAtRisk                // +1 when a member turns at risk, -1 when no longer
	AggDormant               // +1 when a member turns dormant, -1 when back
	AggEnrolments            // cashier rows: enrolments
	AggCounters
)

// AggCounterNames names the counters (PostgreSQL column names).
var AggCounterNames = [AggCounters]string{"new_members", "member_sales", "member_amount", "points_issued",
	"points_redeemed", "active", "repurchasers", "members", "at_risk", "dormant", "enrolments"}

// Counts is one row's counters. They add with wrap-around (exact as
// differences); reports sum rows with saturation and say so.
type Counts [AggCounters]int64

// Zero reports whether every counter is 0.
func (c *Counts) Zero() bool { return *c == Counts{} }

// Scopes of a row.
const (
	// ScopeStore rows are per store and day: sales, points, enrolments,
	// active members and repurchasers of the store, and the life cycle of
	// the members whose home (enrolling) store it is.
	ScopeStore = "s"
	// ScopeChain rows hold chain-wide active members and repurchasers.
	// Their Store is only the store whose upload wrote the change (so
	// uploads of different stores do not queue on one row); a report sums
	// them over stores.
	ScopeChain = "c"
	// ScopeCashier rows are per store, cashier and day: enrolments and
	// points issued.
	ScopeCashier = "k"
)

// AggKey names a row. Day rows have any Day; month rows have the first
// day of the month.
type AggKey struct {
	Scope   string
	Store   string
	Cashier string
	Day     Day
}

// AggRow is a stored row.
type AggRow struct {
	AggKey
	N Counts
}

// AggDelta is a change to the rows.
type AggDelta map[AggKey]*Counts

func (d AggDelta) add(k AggKey, i int, v int64) {
	c := d[k]
	if c == nil {
		c = &Counts{}
		d[k] = c
	}
	c[i] += v
}

// LifetimeDay is the Day of the lifetime rows kept with the month rows:
// per store, its life-cycle counters (AggMembers, AggAtRisk, AggDormant)
// summed over every day. A report of a recent month then takes the life
// cycle as the lifetime less the few months after it, rather than summing
// every month since the chain began. No calendar day comes near it.
const LifetimeDay = Day(1 << 30)

// lifeCounters are the counters whose running sum is the life cycle.
var lifeCounters = [...]int{AggMembers, AggAtRisk, AggDormant}

// Rows lists the non-zero changes in key order, as day rows and as month
// rows (the same changes summed by month, and the store rows' life-cycle
// counters summed into their LifetimeDay row).
func (d AggDelta) Rows() (days, months []AggRow) {
	m := AggDelta{}
	for k, c := range d {
		if c.Zero() {
			continue
		}
		days = append(days, AggRow{k, *c})
		mk := k
		mk.Day = k.Day.Month()
		for i, v := range c {
			m.add(mk, i, v)
		}
		if k.Scope == ScopeStore {
			lk := AggKey{Scope: ScopeStore, Store: k.Store, Day: LifetimeDay}
			for _, i := range lifeCounters {
				if c[i] != 0 {
					m.add(lk, i, c[i])
				}
			}
		}
	}
	for k, c := range m {
		if !c.Zero() {
			months = append(months, AggRow{k, *c})
		}
	}
	SortAggRows(days)
	SortAggRows(months)
	return days, months
}

// SortAggRows orders rows by day, scope, store, cashier.
func SortAggRows(rs []AggRow) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].AggKey.less(rs[j].AggKey) })
}

func (a AggKey) less(b AggKey) bool {
	if a.Day != b.Day {
		return a.Day < b.Day
	}
	if a.Scope != b.Scope {
		return a.Scope < b.Scope
	}
	if a.Store != b.Store {
		return a.Store < b.Store
	}
	return a.Cashier < b.Cashier
}

// AggConfig is what the aggregates are built with: the zone for entries
// without a readable Local clock, and the life-cycle thresholds. Stores
// keep the one their rows were built with; a report with another rebuilds
// them first.
type AggConfig struct {
	TimeZone    string `json:"time_zone"`
	AtRiskDays  int    `json:"at_risk_days"`
	DormantDays int    `json:"dormant_days"`
}

// DefaultAggConfig is the Options defaults'.
var DefaultAggConfig = AggConfig{TimeZone: "Asia/Shanghai", AtRiskDays: 60, DormantDays: 180}

// zones caches loaded locations: LoadLocation reads the zone file each time.
var zones sync.Map // name → *time.Location

func (c AggConfig) loc() *time.Location {
	if l, ok := zones.Load(c.TimeZone); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		l = time.FixedZone("UTC+8", 8*3600)
	}
	zones.Store(c.TimeZone, l)
	return l
}

// RepurchaseDays: a member repurchased when they bought again the same day
// or within this many days after their first sale of the month.
const RepurchaseDays = 30

// SaleFact is what the aggregates know of one sale: the sale itself once
// stored, and what refunds and voids of it reversed (they may arrive first).
type SaleFact struct {
	Seen     bool   `json:"seen,omitempty"`
	Store    string `json:"store,omitempty"`
	Cashier  string `json:"cashier,omitempty"`
	Member   string `json:"member,omitempty"`
	Day      Day    `json:"day,omitempty"`
	Due      int64  `json:"due,omitempty"`
	Earned   int64  `json:"earned,omitempty"`
	Redeem   int64  `json:"redeem,omitempty"`
	Refunded int64  `json:"refunded,omitempty"`
	Reversed int64  `json:"reversed,omitempty"`
	Restored int64  `json:"restored,omitempty"`
	Full     bool   `json:"full,omitempty"` // a refund said it refunded everything
	Voided   bool   `json:"voided,omitempty"`
}

// Keep reports whether a store keeps the fact: a member sale, one that
// moved points, reversals whose sale has not arrived yet, and reversals of
// any sale. The last are kept even for a walk-in sale that gave no points,
// whose reversals change no figure (saleContrib): a store cannot always
// tell whether such a sale has arrived (bbolt finds entries only in upload
// order; an archived walk-in sale leaves no trace in PostgreSQL), so it
// must keep their reversals as it keeps those of a sale still to come, and
// a recomputation keeps them too, to hold exactly what the stores hold
// whatever order the entries came in.
func (f *SaleFact) Keep() bool {
	return !f.Seen || f.Member != "" || f.Earned != 0 || f.Redeem != 0 || f.HasReversal()
}

// HasReversal reports whether a refund or void of the sale is known.
func (f *SaleFact) HasReversal() bool {
	return f.Refunded != 0 || f.Reversed != 0 || f.Restored != 0 || f.Full || f.Voided
}

// Reversal is the part of the fact that refunds and voids wrote; the
// rest is the sale entry's own. A store that can read a sale entry by its
// id keeps only this part.
func (f *SaleFact) Reversal() SaleFact {
	return SaleFact{Refunded: f.Refunded, Reversed: f.Reversed, Restored: f.Restored, Full: f.Full, Voided: f.Voided}
}

// See fills in the sale entry's part of the fact.
func (c AggConfig) See(f *SaleFact, e *entry.Entry) {
	f.Seen, f.Store, f.Cashier, f.Member, f.Day = true, e.Store, e.Cashier, e.MemberID, EntryDay(e, c.loc())
	f.Due, f.Earned, f.Redeem = e.Sale.Due, e.Sale.PointsEarned, e.Sale.RedeemPoints
}

// counts: the sale stands (stored, not voided).
func (f *SaleFact) counts() bool { return f.Seen && !f.Voided }

// Visit: a member sale that stands and is not wholly refunded. It is a
// member's visit for active, repurchase and life-cycle figures.
func (f *SaleFact) Visit() bool {
	return f.counts() && f.Member != "" && !f.Full && (f.Due == 0 || f.Refunded < f.Due)
}

func (c AggConfig) saleContrib(f *SaleFact, d AggDelta, sign int64) {
	if !f.counts() {
		return
	}
	sk := AggKey{Scope: ScopeStore, Store: f.Store, Day: f.Day}
	issued := left(f.Earned, f.Reversed)
	d.add(sk, AggPointsIssued, sign*issued)
	d.add(sk, AggPointsRedeemed, sign*left(f.Redeem, f.Restored))
	if issued != 0 {
		d.add(AggKey{Scope: ScopeCashier, Store: f.Store, Cashier: f.Cashier, Day: f.Day}, AggPointsIssued, sign*issued)
	}
	if f.Visit() {
		d.add(sk, AggMemberSales, sign)
		d.add(sk, AggMemberAmount, sign*(f.Due-f.Refunded))
	}
}

// left is what remains of given points after back of them were given
// back: never below none, since refunds cannot take back more than their
// sale moved. A till never writes more; bounding it also makes the
// reversals of a sale that moved no points contribute nothing, so a store
// that cannot tell whether that sale has arrived (Keep) still holds the
// figures a recomputation gives.
func left(given, back int64) int64 { return given - min(back, given) }

// Visit is a day a member bought, with the number of visits that day.
type Visit struct {
	Day Day   `json:"d"`
	N   int32 `json:"n"`
}

// MarshalJSON writes [day, n]: a member fact is mostly visits.
func (v Visit) MarshalJSON() ([]byte, error) {
	b := append(strconv.AppendInt([]byte{'['}, int64(v.Day), 10), ',')
	return append(strconv.AppendInt(b, int64(v.N), 10), ']'), nil
}

func (v *Visit) UnmarshalJSON(b []byte) error {
	var a [2]int64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	v.Day, v.N = Day(a[0]), int32(a[1])
	return nil
}

// MemberFact is what the aggregates know of one member: the enrolment
// (the earliest stored, so arrival order never matters), the days they
// bought per store, and the same summed over the stores (Days: the
// chain's visits), so that a sale's refold reads its store's and the
// chain's visits, never those of every store the member bought at.
type MemberFact struct {
	Enrolled bool               `json:"enrolled,omitempty"`
	EnrolDay Day                `json:"enrol_day,omitempty"`
	Home     string             `json:"home,omitempty"`
	Visits   map[string][]Visit `json:"visits,omitempty"`
	Days     []Visit            `json:"days,omitempty"`
}

func (m *MemberFact) visit(store string, day Day, n int32) {
	if m.Visits == nil {
		m.Visits = map[string][]Visit{}
	}
	if vs := addVisit(m.Visits[store], day, n); len(vs) > 0 {
		m.Visits[store] = vs
	} else {
		delete(m.Visits, store)
	}
	m.Days = addVisit(m.Days, day, n)
}

// addVisit adds n visits on day to the sorted vs.
func addVisit(vs []Visit, day Day, n int32) []Visit {
	i := sort.Search(len(vs), func(i int) bool { return vs[i].Day >= day })
	if i < len(vs) && vs[i].Day == day {
		vs[i].N += n
		if vs[i].N == 0 {
			vs = slices.Delete(vs, i, i+1)
		}
	} else if n != 0 {
		vs = slices.Insert(vs, i, Visit{day, n})
	}
	return vs
}

// active adds the active and repurchase counters of one sequence of visit
// days (sorted) to rows keyed k.
func active(vs []Visit, k AggKey, d AggDelta, sign int64) {
	activeIn(vs, noDay, noDay, k, d, sign)
}

// noDay stands for "no visit": before every day and after every day.
const noDay = Day(-1 << 31)

// activeIn adds the counters of the visits vs, a run of consecutive visits
// of a sequence whose visit just before the run is on day prev and just
// after it on day next (noDay: none). A visit's counters depend only on
// those neighbours, so a run gives exactly its part of the sequence's.
func activeIn(vs []Visit, prev, next Day, k AggKey, d AggDelta, sign int64) {
	for i, v := range vs {
		p := prev
		if i > 0 {
			p = vs[i-1].Day
		}
		if p != noDay && p.Month() == v.Day.Month() {
			continue // not the first visit of its month
		}
		n := next
		if i+1 < len(vs) {
			n = vs[i+1].Day
		}
		k.Day = v.Day
		d.add(k, AggActive, sign)
		if v.N >= 2 || (n != noDay && n-v.Day <= RepurchaseDays) {
			d.add(k, AggRepurchasers, sign)
		}
	}
}

func (c AggConfig) memberContrib(m *MemberFact, shard string, d AggDelta, sign int64) {
	for st, vs := range m.Visits {
		active(vs, AggKey{Scope: ScopeStore, Store: st}, d, sign)
	}
	chain := m.Days
	active(chain, AggKey{Scope: ScopeChain, Store: shard}, d, sign)
	if !m.Enrolled {
		return
	}
	// Life cycle: as of day D the member is at risk when their last
	// activity (enrolment or a visit) up to D lies AtRiskDays or more but
	// fewer than DormantDays before D, dormant when DormantDays or more.
	// Each activity a with the next one n (none: forever) holds on [a, n),
	// so it makes the member at risk on [a+AtRisk, min(n, a+Dormant)) and
	// dormant on [a+Dormant, n): kept as +1/-1 at the ends, and a count as
	// of D is the sum of every row up to D.
	h := AggKey{Scope: ScopeStore, Store: m.Home}
	at := func(day Day, i int, v int64) {
		k := h
		k.Day = day
		d.add(k, i, sign*v)
	}
	at(m.EnrolDay, AggMembers, 1)
	acts := []Day{m.EnrolDay}
	for _, v := range chain {
		if v.Day > m.EnrolDay {
			acts = append(acts, v.Day)
		}
	}
	ar, dm := Day(c.AtRiskDays), Day(c.DormantDays)
	for i, a := range acts {
		c.lifeSpan(a, acts[i+1:], ar, dm, at)
	}
}

// windowMargin is how far around the changed days a member's counters are
// refolded. A visit's active and repurchase counters depend on the visit
// before it only through its month (two days of a month are at most 30
// apart) and on the one after it only within RepurchaseDays, so a visit
// more than this many days from every changed day keeps its counters.
const windowMargin = 62

// memberContribIn adds the part of m's contribution that a change of its
// visits on days within [lo+windowMargin, hi-windowMargin] can alter, for
// an m whose enrolment that change leaves as it is: the active and
// repurchase counters of the visits on days in [lo, hi] of the stores in
// changed (nil: every store) and of the chain, and the life-cycle spans of
// the activities in [lo, hi] and of the last one before lo (whose span
// ends at the next activity). Everything else m contributes is the same
// before and after such a change, so the difference of this part before
// and after is the difference of the whole. With lo and hi beyond every
// day it is the whole contribution (memberContrib).
func (c AggConfig) memberContribIn(m *MemberFact, shard string, lo, hi Day, changed map[string]bool, d AggDelta, sign int64) {
	// in is the part of vs in [lo, hi] with the days just outside it.
	in := func(vs []Visit) (run []Visit, p, n Day) {
		i0 := sort.Search(len(vs), func(i int) bool { return vs[i].Day >= lo })
		i1 := sort.Search(len(vs), func(i int) bool { return vs[i].Day > hi })
		p, n = noDay, noDay
		if i0 > 0 {
			p = vs[i0-1].Day
		}
		if i1 < len(vs) {
			n = vs[i1].Day
		}
		return vs[i0:i1], p, n
	}
	for st, vs := range m.Visits {
		if changed == nil || changed[st] {
			run, p, n := in(vs)
			activeIn(run, p, n, AggKey{Scope: ScopeStore, Store: st}, d, sign)
		}
	}
	chain, prev, next := in(m.Days) // prev, next: the chain's visit days just outside [lo, hi]
	activeIn(chain, prev, next, AggKey{Scope: ScopeChain, Store: shard}, d, sign)
	if !m.Enrolled {
		return
	}
	// Activities: the enrolment and the chain's visit days after it. The
	// list below is a run of consecutive ones from its first element
	// through the first after hi, so every element up to hi has its true
	// next activity.
	acts := make([]Day, 0, len(chain)+3)
	if prev != noDay && prev > m.EnrolDay {
		acts = append(acts, prev) // the enrolment is earlier: not in the run
	} else {
		acts = append(acts, m.EnrolDay)
	}
	for _, v := range chain {
		if v.Day > m.EnrolDay {
			acts = append(acts, v.Day)
		}
	}
	if next != noDay && next > m.EnrolDay {
		acts = append(acts, next)
	}
	h := AggKey{Scope: ScopeStore, Store: m.Home}
	at := func(day Day, i int, v int64) {
		k := h
		k.Day = day
		d.add(k, i, sign*v)
	}
	if acts[0] == m.EnrolDay && m.EnrolDay <= hi {
		at(m.EnrolDay, AggMembers, 1)
	}
	ar, dm := Day(c.AtRiskDays), Day(c.DormantDays)
	for i, a := range acts {
		if a > hi {
			break
		}
		c.lifeSpan(a, acts[i+1:], ar, dm, at)
	}
}

// lifeSpan adds the at-risk and dormant spans of activity a, whose later
// activities begin with rest (none: a is the last).
func (c AggConfig) lifeSpan(a Day, rest []Day, ar, dm Day, at func(Day, int, int64)) {
	next, last := Day(0), len(rest) == 0
	if !last {
		next = rest[0]
	}
	span := func(ctr int, from, to Day, open bool) {
		if !open && to <= from {
			return
		}
		at(from, ctr, 1)
		if !open {
			at(to, ctr, -1)
		}
	}
	end := a + dm
	if !last && next < end {
		end = next
	}
	span(AggAtRisk, a+ar, end, false)
	span(AggDormant, a+dm, next, last)
}

// AggFacts are the facts a fold reads and changes. A missing one is new.
type AggFacts struct {
	Sales   map[string]*SaleFact
	Members map[string]*MemberFact
}

// NewAggFacts is an empty set.
func NewAggFacts() *AggFacts {
	return &AggFacts{Sales: map[string]*SaleFact{}, Members: map[string]*MemberFact{}}
}

func enrolID(e *entry.Entry) string {
	if e.MemberID != "" {
		return e.MemberID
	}
	return e.Enrol.Member.ID
}

// AggSaleIDs lists the sales whose facts folding es reads: the sales of es
// and those their refunds and voids reverse.
func AggSaleIDs(es []entry.Entry) []string {
	var ids []string
	for i := range es {
		e := &es[i]
		switch {
		case e.Sale != nil:
			ids = append(ids, e.ID())
		case e.Refund != nil:
			ids = append(ids, e.Refund.SaleEntry)
		case e.Void != nil:
			ids = append(ids, e.Void.SaleEntry)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// AggMemberIDs lists the members whose facts folding es reads, given the
// facts of AggSaleIDs(es) (a reversed sale names its member).
func AggMemberIDs(es []entry.Entry, sales map[string]*SaleFact) []string {
	var ids []string
	for i := range es {
		e := &es[i]
		switch {
		case (e.Sale != nil || e.Refund != nil || e.Void != nil) && e.MemberID != "":
			ids = append(ids, e.MemberID)
		case e.Enrol != nil:
			ids = append(ids, enrolID(e))
		}
	}
	for _, f := range sales {
		if f.Member != "" {
			ids = append(ids, f.Member)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// AggFold is a fold's outcome: the counters' change and the facts it
// touched (to write back; a sale fact that is not Keep is deleted).
type AggFold struct {
	Delta   AggDelta
	Sales   []string
	Members []string
	// Changed lists, per member, the visit records whose visits changed
	// (the store's and the chain's of each month), in order: the records a
	// store rewrites.
	Changed map[string][]VisitKey
}

// Fold folds es into f (which must hold the facts AggSaleIDs and
// AggMemberIDs name that exist) and returns the change to the rows. shard
// is the Store of the chain rows it writes (the uploading store).
func (c AggConfig) Fold(es []entry.Entry, shard string, f *AggFacts) AggFold {
	return c.fold(es, shard, f, true)
}

// fold is Fold; windowed refolds each member only around its changed days
// (memberContribIn), otherwise over its whole history (memberContrib).
func (c AggConfig) fold(es []entry.Entry, shard string, f *AggFacts, windowed bool) AggFold {
	loc := c.loc()
	d := AggDelta{}
	type saleWas struct {
		visit         bool
		member, store string
		day           Day
	}
	sales := map[string]saleWas{}
	var saleOrder []string
	// A member's enrolment as it was, and the visits the fold moves: the
	// counters are refolded once per member, after the entries.
	type move struct {
		store string
		day   Day
		n     int32
	}
	type memberWas struct {
		enrolled bool
		enrolDay Day
		home     string
		moves    []move
	}
	members := map[string]*memberWas{}
	var memberOrder []string
	member := func(id string) *MemberFact {
		m := f.Members[id]
		if m == nil {
			m = &MemberFact{}
			f.Members[id] = m
		}
		if members[id] == nil {
			members[id] = &memberWas{enrolled: m.Enrolled, enrolDay: m.EnrolDay, home: m.Home}
			memberOrder = append(memberOrder, id)
		}
		return m
	}
	moveVisit := func(id, store string, day Day, n int32) {
		member(id)
		w := members[id]
		w.moves = append(w.moves, move{store, day, n})
	}
	sale := func(id string) *SaleFact {
		s := f.Sales[id]
		if s == nil {
			s = &SaleFact{}
			f.Sales[id] = s
		}
		if _, ok := sales[id]; !ok {
			sales[id] = saleWas{s.Visit(), s.Member, s.Store, s.Day}
			saleOrder = append(saleOrder, id)
			c.saleContrib(s, d, -1)
		}
		return s
	}
	for i := range es {
		e := &es[i]
		switch {
		case e.Sale != nil:
			c.See(sale(e.ID()), e)
		case e.Refund != nil:
			s := sale(e.Refund.SaleEntry)
			s.Refunded += e.Refund.Amount
			s.Reversed += e.Refund.PointsReversed
			s.Restored += e.Refund.PointsRestored
			s.Full = s.Full || e.Refund.Full
		case e.Void != nil:
			sale(e.Void.SaleEntry).Voided = true
		case e.Enrol != nil:
			day := EntryDay(e, loc)
			d.add(AggKey{Scope: ScopeStore, Store: e.Store, Day: day}, AggNewMembers, 1)
			d.add(AggKey{Scope: ScopeCashier, Store: e.Store, Cashier: e.Cashier, Day: day}, AggEnrolments, 1)
			m := member(enrolID(e))
			if !m.Enrolled || day < m.EnrolDay || (day == m.EnrolDay && e.Store < m.Home) {
				m.Enrolled, m.EnrolDay, m.Home = true, day, e.Store
			}
		case e.Points != nil && e.Kind == entry.KindPointsAdjust && e.Points.Points > 0:
			day := EntryDay(e, loc)
			d.add(AggKey{Scope: ScopeStore, Store: e.Store, Day: day}, AggPointsIssued, e.Points.Points)
			d.add(AggKey{Scope: ScopeCashier, Store: e.Store, Cashier: e.Cashier, Day: day}, AggPointsIssued, e.Points.Points)
		}
	}
	// Visits follow the sales: move each changed one in its member's days.
	for _, id := range saleOrder {
		s, was := f.Sales[id], sales[id]
		if was.visit {
			moveVisit(was.member, was.store, was.day, -1)
		}
		if s.Visit() {
			moveVisit(s.Member, s.Store, s.Day, 1)
		}
		c.saleContrib(s, d, 1)
	}
	changedRecs := map[string][]VisitKey{}
	for _, id := range memberOrder {
		m, w := f.Members[id], members[id]
		if len(w.moves) > 0 {
			var ks []VisitKey
			for _, mv := range w.moves {
				ks = append(ks, VisitKey{Month: mv.day.Month()}, VisitKey{Store: mv.store, Month: mv.day.Month()})
			}
			slices.SortFunc(ks, VisitKey.compare)
			changedRecs[id] = slices.Compact(ks)
		}
		if windowed && w.enrolled == m.Enrolled && w.enrolDay == m.EnrolDay && w.home == m.Home {
			if len(w.moves) == 0 {
				continue // nothing it contributes changed
			}
			lo, hi := w.moves[0].day, w.moves[0].day
			changed := map[string]bool{}
			for _, mv := range w.moves {
				lo, hi = min(lo, mv.day), max(hi, mv.day)
				changed[mv.store] = true
			}
			// Clamped so the margin cannot wrap around (or reach noDay).
			lo = Day(max(int64(lo)-windowMargin, int64(noDay)+1))
			hi = Day(min(int64(hi)+windowMargin, int64(^uint32(0)>>1)))
			c.memberContribIn(m, shard, lo, hi, changed, d, -1)
			for _, mv := range w.moves {
				m.visit(mv.store, mv.day, mv.n)
			}
			c.memberContribIn(m, shard, lo, hi, changed, d, 1)
			continue
		}
		old := &MemberFact{Enrolled: w.enrolled, EnrolDay: w.enrolDay, Home: w.home, Visits: m.Visits, Days: m.Days}
		c.memberContrib(old, shard, d, -1)
		for _, mv := range w.moves {
			m.visit(mv.store, mv.day, mv.n)
		}
		c.memberContrib(m, shard, d, 1)
	}
	return AggFold{Delta: d, Sales: saleOrder, Members: memberOrder, Changed: changedRecs}
}

// Aggregator is the part of a Store that keeps the aggregates.
type Aggregator interface {
	// AggConfig is the configuration the stored rows were built with.
	AggConfig(ctx context.Context) (AggConfig, error)
	// RebuildAggregates recomputes every row and fact from the stored
	// entries with c, in one transaction that holds ingest off.
	RebuildAggregates(ctx context.Context, c AggConfig) error
	// AggRows reads rows: month rows (months) or day rows with Day in
	// [from, to], of the scopes given (all when none).
	AggRows(ctx context.Context, months bool, from, to Day, scopes ...string) ([]AggRow, error)
	// AggSpan is the first and the last month that has month rows, the
	// LifetimeDay rows aside; ok is false when there are none.
	AggSpan(ctx context.Context) (first, last Day, ok bool, err error)
	// AggDump reads every row and fact, for checking them.
	AggDump(ctx context.Context) (*AggDump, error)
	// AggTotals reads the entry totals per store.
	AggTotals(ctx context.Context) (map[string]*TotalSums, error)
}

// AggDump is everything the aggregates hold.
type AggDump struct {
	Config  AggConfig
	Days    []AggRow
	Months  []AggRow
	Sales   map[string]*SaleFact
	Members map[string]*MemberFact
	Totals  map[string]*TotalSums // per store
}

// RecomputeAggregates folds every stored entry (from scan) afresh with c.
func RecomputeAggregates(ctx context.Context, c AggConfig, scan func(context.Context, func(Stored) error) error) (*AggDump, error) {
	b := NewAggBuilder(c)
	var chunk []entry.Entry
	err := scan(ctx, func(x Stored) error {
		chunk = append(chunk, x.Entry)
		if len(chunk) == 4096 {
			b.Add(chunk)
			chunk = chunk[:0]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.Add(chunk)
	return b.Dump(), nil
}

func (m *MemberFact) empty() bool { return !m.Enrolled && len(m.Visits) == 0 && len(m.Days) == 0 }

// KeepMember reports whether a member fact is worth storing.
func KeepMember(m *MemberFact) bool { return !m.empty() }

// normal sums chain rows over their shard and drops zero rows, so two sets
// of rows that report the same figures compare equal.
func normal(rs []AggRow) []AggRow {
	d := AggDelta{}
	for _, r := range rs {
		k := r.AggKey
		if k.Scope == ScopeChain {
			k.Store = ""
		}
		for i, v := range r.N {
			d.add(k, i, v)
		}
	}
	var out []AggRow
	for k, c := range d {
		if !c.Zero() {
			out = append(out, AggRow{k, *c})
		}
	}
	SortAggRows(out)
	return out
}

// CompareAggregates lists how got (what a store holds) differs from want
// (a recomputation); none when they agree exactly.
func CompareAggregates(want, got *AggDump) []string {
	var diffs []string
	if want.Config != got.Config {
		diffs = append(diffs, fmt.Sprintf("config: stored %+v, recomputed with %+v", got.Config, want.Config))
	}
	rows := func(what string, w, g []AggRow) {
		wm, gm := map[AggKey]Counts{}, map[AggKey]Counts{}
		for _, r := range normal(w) {
			wm[r.AggKey] = r.N
		}
		for _, r := range normal(g) {
			gm[r.AggKey] = r.N
		}
		var keys []AggKey
		for k := range wm {
			keys = append(keys, k)
		}
		for k := range gm {
			if _, ok := wm[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
		for _, k := range keys {
			if wm[k] != gm[k] {
				diffs = append(diffs, fmt.Sprintf("%s row %s %s/%s/%s: stored %v, recomputed %v", what, k.Day, k.Scope, k.Store, k.Cashier, gm[k], wm[k]))
			}
		}
	}
	rows("day", want.Days, got.Days)
	rows("month", want.Months, got.Months)
	facts := func(what string, w, g map[string][]byte) {
		var ids []string
		for id := range w {
			ids = append(ids, id)
		}
		for id := range g {
			if _, ok := w[id]; !ok {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			if string(w[id]) != string(g[id]) {
				diffs = append(diffs, fmt.Sprintf("%s %s: stored %s, recomputed %s", what, id, g[id], w[id]))
			}
		}
	}
	facts("sale", encodeAll(reversals(want.Sales)), encodeAll(reversals(got.Sales)))
	facts("member", encodeAll(want.Members), encodeAll(got.Members))
	facts("totals of store", encodeAll(nonZero(want.Totals)), encodeAll(nonZero(got.Totals)))
	return diffs
}

// nonZero drops stores whose totals are all 0.
func nonZero(m map[string]*TotalSums) map[string]*TotalSums {
	out := map[string]*TotalSums{}
	for st, t := range m {
		if !t.Zero() {
			out[st] = t
		}
	}
	return out
}

// reversals keeps the reversal part of the facts that have one: what a
// store must hold (the rest is in the sale entries).
func reversals(m map[string]*SaleFact) map[string]*SaleFact {
	out := map[string]*SaleFact{}
	for id, f := range m {
		if f.HasReversal() {
			r := f.Reversal()
			out[id] = &r
		}
	}
	return out
}

func encodeAll[T any](m map[string]*T) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for id, v := range m {
		b, _ := json.Marshal(v) // plain structs: cannot fail
		out[id] = b
	}
	return out
}

// VerifyAggregates recomputes the aggregates of st from its entries and
// lists every difference from what it holds.
func VerifyAggregates(ctx context.Context, st Store) ([]string, error) {
	got, err := st.AggDump(ctx)
	if err != nil {
		return nil, err
	}
	want, err := RecomputeAggregates(ctx, got.Config, st.Scan)
	if err != nil {
		return nil, err
	}
	return CompareAggregates(want, got), nil
}

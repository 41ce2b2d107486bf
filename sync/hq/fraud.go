package hq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"posagent/ledger/entry"
)

// Enrolment fraud signals. Staff judged on sign-up counts have been known
// to fabricate members; these signals point at enrolments that look made
// up, per store and cashier, for a person to look into. None of them is
// proof: a signal is a reason to ask, not a verdict.
//
// The report for a month reads only that month's enrolments and what the
// signals need of them, from facts the stores keep at ingest (EnrolFact):
// one per member, with its enrolment, its first sale and its first void,
// indexed by the enrolment's store-local month and by mobile and card
// token. Runs, shared prefixes and bursts are looked for among the same
// cashier's enrolments of the month.

// Signal names, as the report gives them.
const (
	SignalNoPurchase = "no_purchase"           // no sale within NoPurchaseDays of enrolling, or every sale voided
	SignalMobileRun  = "mobile_run"            // mobile in a run of (near-)consecutive numbers
	SignalPrefix     = "mobile_prefix"         // mobile shares a long prefix with the cashier's other enrolments
	SignalBurst      = "burst"                 // one of BurstCount enrolments within BurstMinutes
	SignalReenrol    = "reenrolled_after_void" // card or mobile of an earlier member who had a void
)

// FraudSignals lists every signal in the order the report shows them.
var FraudSignals = []string{SignalNoPurchase, SignalMobileRun, SignalPrefix, SignalBurst, SignalReenrol}

// FraudSettings are the thresholds. Zero fields take the defaults.
type FraudSettings struct {
	// NoPurchaseDays: an enrolment with no sale this many days after it
	// [30, the welcome coupon's validity: a real new member usually
	// spends it]. Enrolments younger than that are pending, not flagged.
	NoPurchaseDays int `json:"no_purchase_days"`
	// RunGap, RunMin: RunMin or more of a cashier's mobiles in a chain
	// where each is at most RunGap above the one before [3, 3].
	RunGap int `json:"run_gap"`
	RunMin int `json:"run_min"`
	// PrefixLen, PrefixMin: PrefixMin or more distinct mobiles of a
	// cashier sharing their first PrefixLen digits [8, 3]; among a month's
	// real customers that is all but impossible.
	PrefixLen int `json:"prefix_len"`
	PrefixMin int `json:"prefix_min"`
	// BurstCount enrolments by one cashier within BurstMinutes [5, 10]:
	// faster than real sign-ups, which take a customer's details each.
	BurstCount   int `json:"burst_count"`
	BurstMinutes int `json:"burst_minutes"`
}

// WithDefaults fills the zero fields.
func (s FraudSettings) WithDefaults() FraudSettings {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&s.NoPurchaseDays, 30)
	def(&s.RunGap, 3)
	def(&s.RunMin, 3)
	def(&s.PrefixLen, 8)
	def(&s.PrefixMin, 3)
	def(&s.BurstCount, 5)
	def(&s.BurstMinutes, 10)
	return s
}

// Validate says which threshold cannot work.
func (s FraudSettings) Validate() error {
	switch {
	case s.NoPurchaseDays < 0 || s.NoPurchaseDays > 3660:
		return errors.New("no_purchase_days must be 1..3660")
	case s.RunGap < 0 || s.RunGap > 1000:
		return errors.New("run_gap must be 1..1000")
	case s.RunMin < 0 || s.RunMin == 1 || s.RunMin > 1000:
		return errors.New("run_min must be 2..1000")
	case s.PrefixLen < 0 || (s.PrefixLen > 0 && s.PrefixLen < 4) || s.PrefixLen > 14:
		return errors.New("prefix_len must be 4..14")
	case s.PrefixMin < 0 || s.PrefixMin == 1 || s.PrefixMin > 1000:
		return errors.New("prefix_min must be 2..1000")
	case s.BurstCount < 0 || s.BurstCount == 1 || s.BurstCount > 1000:
		return errors.New("burst_count must be 2..1000")
	case s.BurstMinutes < 0 || s.BurstMinutes > 1440:
		return errors.New("burst_minutes must be 1..1440")
	}
	return nil
}

// EnrolFact is what the stores keep per member for the signals. A sale or
// void that arrives before its member's enrolment makes a fact with Month
// "" that the enrolment completes.
type EnrolFact struct {
	Member     string    `json:"member"`
	Store      string    `json:"store,omitempty"`
	Till       string    `json:"till,omitempty"`
	Seq        uint64    `json:"seq,omitempty"`
	Cashier    string    `json:"cashier,omitempty"`
	Month      string    `json:"month,omitempty"` // store-local YYYY-MM of the enrolment
	At         time.Time `json:"at,omitzero"`     // enrolment, UTC
	Mobile     string    `json:"mobile,omitempty"`
	CardTokens []string  `json:"card_tokens,omitempty"`
	FirstSale  time.Time `json:"first_sale,omitzero"`
	Sales      int64     `json:"sales,omitempty"`
	FirstVoid  time.Time `json:"first_void,omitzero"`
	Voids      int64     `json:"voids,omitempty"`
}

// Enrolled reports whether the enrolment has arrived.
func (f *EnrolFact) Enrolled() bool { return f.Month != "" }

// FraudChange is what a run of entries changes in one member's fact.
type FraudChange struct {
	Member    string
	Enrol     *EnrolFact // the earliest enrolment among the entries, if any
	FirstSale time.Time
	Sales     int64
	FirstVoid time.Time
	Voids     int64
}

// CashierCount is the sales and voids a cashier rang in a store-local
// month, shown beside their enrolments.
type CashierCount struct {
	Month   string `json:"month"`
	Store   string `json:"store"`
	Cashier string `json:"cashier"`
	Sales   int64  `json:"sales"`
	Voids   int64  `json:"voids"`
}

// entryMonth is the store-local month of e: of its Local wall clock, or of
// At in UTC when Local is unreadable (tills always write it).
func entryMonth(e *entry.Entry) string {
	return EntryDay(e, time.UTC).Time().Format("2006-01")
}

// FraudChanges folds entries into per-member changes (sorted by member)
// and per-cashier counts (sorted by month, store, cashier). The result
// does not depend on the entries' order, so facts kept batch by batch
// equal those folded from all entries at once.
func FraudChanges(es []entry.Entry) ([]FraudChange, []CashierCount) {
	ch := map[string]*FraudChange{}
	get := func(id string) *FraudChange {
		c := ch[id]
		if c == nil {
			c = &FraudChange{Member: id}
			ch[id] = c
		}
		return c
	}
	cc := map[[3]string]*CashierCount{}
	count := func(e *entry.Entry) *CashierCount {
		k := [3]string{entryMonth(e), e.Store, e.Cashier}
		c := cc[k]
		if c == nil {
			c = &CashierCount{Month: k[0], Store: k[1], Cashier: k[2]}
			cc[k] = c
		}
		return c
	}
	for i := range es {
		e := &es[i]
		switch e.Kind {
		case entry.KindEnrol:
			id := e.MemberID
			if e.Enrol != nil && id == "" {
				id = e.Enrol.Member.ID
			}
			if id == "" || e.Enrol == nil {
				continue
			}
			f := &EnrolFact{Member: id, Store: e.Store, Till: e.Till, Seq: e.Seq, Cashier: e.Cashier,
				Month: entryMonth(e), At: e.At.UTC(), Mobile: e.Enrol.Member.Mobile,
				CardTokens: slices.Clone(e.Enrol.Member.CardTokens)}
			c := get(id)
			if c.Enrol == nil || enrolBefore(f, c.Enrol) {
				c.Enrol = f
			}
		case entry.KindSale:
			count(e).Sales++
			if e.MemberID != "" {
				c := get(e.MemberID)
				c.Sales++
				c.FirstSale = minTime(c.FirstSale, e.At.UTC())
			}
		case entry.KindVoid:
			count(e).Voids++
			if e.MemberID != "" {
				c := get(e.MemberID)
				c.Voids++
				c.FirstVoid = minTime(c.FirstVoid, e.At.UTC())
			}
		}
	}
	out := make([]FraudChange, 0, len(ch))
	for _, c := range ch {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Member < out[j].Member })
	counts := make([]CashierCount, 0, len(cc))
	for _, c := range cc {
		counts = append(counts, *c)
	}
	sort.Slice(counts, func(i, j int) bool {
		a, b := counts[i], counts[j]
		return a.Month+"\x00"+a.Store+"\x00"+a.Cashier < b.Month+"\x00"+b.Store+"\x00"+b.Cashier
	})
	return out, counts
}

// enrolBefore orders two enrolments of one member id (which should not
// happen) so the earliest wins whatever order they arrive in.
func enrolBefore(a, b *EnrolFact) bool {
	if !a.At.Equal(b.At) {
		return a.At.Before(b.At)
	}
	if a.Store != b.Store {
		return a.Store < b.Store
	}
	if a.Till != b.Till {
		return a.Till < b.Till
	}
	return a.Seq < b.Seq
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Apply adds c to the fact.
func (f *EnrolFact) Apply(c FraudChange) {
	f.Member = c.Member
	if c.Enrol != nil && (!f.Enrolled() || enrolBefore(c.Enrol, f)) {
		e := *c.Enrol
		f.Store, f.Till, f.Seq, f.Cashier, f.Month, f.At, f.Mobile, f.CardTokens =
			e.Store, e.Till, e.Seq, e.Cashier, e.Month, e.At, e.Mobile, e.CardTokens
	}
	f.Sales += c.Sales
	f.FirstSale = minTime(f.FirstSale, c.FirstSale)
	f.Voids += c.Voids
	f.FirstVoid = minTime(f.FirstVoid, c.FirstVoid)
}

// FraudFacts is every fact and cashier count, for checking what a store
// keeps against RecomputeFraudFacts.
type FraudFacts struct {
	Members  map[string]*EnrolFact
	Cashiers map[[3]string]CashierCount // month, store, cashier
}

// AddCounts adds cs to the cashier counts.
func (d *FraudFacts) AddCounts(cs []CashierCount) {
	for _, c := range cs {
		k := [3]string{c.Month, c.Store, c.Cashier}
		have := d.Cashiers[k]
		have.Month, have.Store, have.Cashier = c.Month, c.Store, c.Cashier
		have.Sales += c.Sales
		have.Voids += c.Voids
		d.Cashiers[k] = have
	}
}

// RecomputeFraudFacts folds every stored entry (from scan) afresh.
func RecomputeFraudFacts(ctx context.Context, scan func(context.Context, func(Stored) error) error) (*FraudFacts, error) {
	d := &FraudFacts{Members: map[string]*EnrolFact{}, Cashiers: map[[3]string]CashierCount{}}
	var chunk []entry.Entry
	flush := func() {
		chs, cs := FraudChanges(chunk)
		for _, c := range chs {
			f := d.Members[c.Member]
			if f == nil {
				f = &EnrolFact{}
				d.Members[c.Member] = f
			}
			f.Apply(c)
		}
		d.AddCounts(cs)
		chunk = chunk[:0]
	}
	err := scan(ctx, func(x Stored) error {
		if chunk = append(chunk, x.Entry); len(chunk) == 1000 {
			flush()
		}
		return nil
	})
	flush()
	return d, err
}

// FraudStore is kept by stores that keep the facts at ingest (bolt, pg).
type FraudStore interface {
	// FraudMonth returns the facts of the members enrolled in the
	// store-local month (YYYY-MM) and the cashier counts of that month.
	FraudMonth(ctx context.Context, month string) ([]EnrolFact, []CashierCount, error)
	// FraudRelated returns the enrolled members' facts with one of the
	// mobiles or card tokens.
	FraudRelated(ctx context.Context, mobiles, tokens []string) ([]EnrolFact, error)
	// FraudDump returns every fact and count.
	FraudDump(ctx context.Context) (*FraudFacts, error)
}

// --- the signals: pure functions, values in, findings out ---

// NoPurchase reports whether f has no real purchase within days of
// enrolling (no sale, the first too late, or every sale voided), and
// whether it is too young to tell as of asOf.
func NoPurchase(f EnrolFact, days int, asOf time.Time) (fired, pending bool) {
	deadline := f.At.AddDate(0, 0, days)
	if f.Sales > 0 && f.Voids >= f.Sales {
		return true, false
	}
	if !f.FirstSale.IsZero() && !f.FirstSale.After(deadline) {
		return false, false
	}
	if asOf.Before(deadline) {
		return false, true
	}
	return true, false
}

// mobileDigits is the mobile as a number when it is one (digits only,
// 7 to 15 of them, an optional leading '+').
func mobileDigits(m string) (string, uint64, bool) {
	if len(m) > 0 && m[0] == '+' {
		m = m[1:]
	}
	if len(m) < 7 || len(m) > 15 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(m, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return m, n, true
}

// MobileRuns flags each mobile that is in a chain of at least min
// distinct numbers of one length, each at most gap above the one before.
func MobileRuns(mobiles []string, gap, min int) []bool {
	type num struct {
		n   uint64
		l   int
		idx int
	}
	var ns []num
	for i, m := range mobiles {
		if d, n, ok := mobileDigits(m); ok {
			ns = append(ns, num{n, len(d), i})
		}
	}
	sort.Slice(ns, func(i, j int) bool {
		if ns[i].l != ns[j].l {
			return ns[i].l < ns[j].l
		}
		return ns[i].n < ns[j].n
	})
	out := make([]bool, len(mobiles))
	for i := 0; i < len(ns); {
		j, distinct := i+1, 1
		for j < len(ns) && ns[j].l == ns[j-1].l && ns[j].n-ns[j-1].n <= uint64(gap) {
			if ns[j].n != ns[j-1].n {
				distinct++
			}
			j++
		}
		if distinct >= min {
			for k := i; k < j; k++ {
				out[ns[k].idx] = true
			}
		}
		i = j
	}
	return out
}

// MobilePrefixes flags each mobile whose first plen digits at least min
// distinct mobiles of the same length share.
func MobilePrefixes(mobiles []string, plen, min int) []bool {
	groups := map[string]map[string][]int{} // length+prefix → number → indexes
	for i, m := range mobiles {
		d, _, ok := mobileDigits(m)
		if !ok || len(d) <= plen {
			continue
		}
		k := strconv.Itoa(len(d)) + ":" + d[:plen]
		if groups[k] == nil {
			groups[k] = map[string][]int{}
		}
		groups[k][d] = append(groups[k][d], i)
	}
	out := make([]bool, len(mobiles))
	for _, g := range groups {
		if len(g) < min {
			continue
		}
		for _, idx := range g {
			for _, i := range idx {
				out[i] = true
			}
		}
	}
	return out
}

// Bursts flags each time that is one of at least k times within window
// (first to last).
func Bursts(times []time.Time, k int, window time.Duration) []bool {
	idx := make([]int, len(times))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return times[idx[a]].Before(times[idx[b]]) })
	out := make([]bool, len(times))
	lo := 0
	for hi := range idx {
		for times[idx[hi]].Sub(times[idx[lo]]) > window {
			lo++
		}
		if hi-lo+1 >= k {
			for x := lo; x <= hi; x++ {
				out[idx[x]] = true
			}
		}
	}
	return out
}

// ReenrolledAfterVoid returns the earlier members among related that share
// f's mobile or a card token and had a void before f enrolled.
func ReenrolledAfterVoid(f EnrolFact, related []EnrolFact) []string {
	var out []string
	for _, r := range related {
		if r.Member == f.Member || !r.Enrolled() || !r.At.Before(f.At) || r.FirstVoid.IsZero() || !r.FirstVoid.Before(f.At) {
			continue
		}
		same := f.Mobile != "" && r.Mobile == f.Mobile
		for _, t := range f.CardTokens {
			same = same || slices.Contains(r.CardTokens, t)
		}
		if same {
			out = append(out, r.Member)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Finding is the signals that fired for one enrolment.
type Finding struct {
	Signals []string
	Pending bool     // too young for the no-purchase signal
	Earlier []string // members it re-enrols (reenrolled_after_void)
}

// DetectFraud runs every signal over a month's enrolments (related: the
// facts of members sharing their mobiles or card tokens) and returns the
// findings by member id; every enrolment has one, most with no signals.
func DetectFraud(month, related []EnrolFact, s FraudSettings, asOf time.Time) map[string]*Finding {
	s = s.WithDefaults()
	out := make(map[string]*Finding, len(month))
	byCashier := map[[2]string][]int{}
	for i, f := range month {
		out[f.Member] = &Finding{}
		k := [2]string{f.Store, f.Cashier}
		byCashier[k] = append(byCashier[k], i)
	}
	fire := func(id, sig string) { out[id].Signals = append(out[id].Signals, sig) }
	for _, f := range month {
		fired, pending := NoPurchase(f, s.NoPurchaseDays, asOf)
		if fired {
			fire(f.Member, SignalNoPurchase)
		}
		out[f.Member].Pending = pending
	}
	for _, idx := range byCashier {
		mobiles := make([]string, len(idx))
		times := make([]time.Time, len(idx))
		for j, i := range idx {
			mobiles[j], times[j] = month[i].Mobile, month[i].At
		}
		runs := MobileRuns(mobiles, s.RunGap, s.RunMin)
		pre := MobilePrefixes(mobiles, s.PrefixLen, s.PrefixMin)
		burst := Bursts(times, s.BurstCount, time.Duration(s.BurstMinutes)*time.Minute)
		for j, i := range idx {
			id := month[i].Member
			if runs[j] {
				fire(id, SignalMobileRun)
			}
			if pre[j] {
				fire(id, SignalPrefix)
			}
			if burst[j] {
				fire(id, SignalBurst)
			}
		}
	}
	// Candidates by mobile and card token, so each enrolment looks only at
	// the facts it shares one with.
	byKey := map[string][]int{}
	for i, r := range related {
		if r.Mobile != "" {
			byKey["m"+r.Mobile] = append(byKey["m"+r.Mobile], i)
		}
		for _, t := range r.CardTokens {
			byKey["c"+t] = append(byKey["c"+t], i)
		}
	}
	for _, f := range month {
		var cand []EnrolFact
		keys := []string{"m" + f.Mobile}
		for _, t := range f.CardTokens {
			keys = append(keys, "c"+t)
		}
		for _, k := range keys {
			for _, i := range byKey[k] {
				cand = append(cand, related[i])
			}
		}
		if e := ReenrolledAfterVoid(f, cand); len(e) > 0 {
			fire(f.Member, SignalReenrol)
			out[f.Member].Earlier = e
		}
	}
	return out
}

// --- the report ---

// FraudEnrolment is one flagged enrolment.
type FraudEnrolment struct {
	Member     string    `json:"member"`
	Store      string    `json:"store"`
	Cashier    string    `json:"cashier"`
	Entry      string    `json:"entry"` // store/till/seq of the enrolment
	EnrolledAt time.Time `json:"enrolled_at"`
	Mobile     string    `json:"mobile,omitempty"` // masked unless the admin holds the pii right
	Signals    []string  `json:"signals"`
	FirstSale  time.Time `json:"first_sale,omitzero"`
	Sales      int64     `json:"sales"`
	Voids      int64     `json:"voids"`
	Earlier    []string  `json:"earlier,omitempty"` // members re-enrolled after their void
}

// FraudCashier is one cashier's month: enrolments and flags beside what
// else they did.
type FraudCashier struct {
	Store      string `json:"store"`
	Cashier    string `json:"cashier"`
	Enrolments int    `json:"enrolments"`
	Flagged    int    `json:"flagged"` // enrolments with at least one signal
	// Signals counts the flagged enrolments per signal (every signal named).
	Signals map[string]int `json:"signals"`
	// FirstPurchases: enrolments whose member bought within the days.
	FirstPurchases int `json:"first_purchases"`
	// Pending: enrolments too young for the no-purchase signal.
	Pending      int   `json:"pending"`
	Sales        int64 `json:"sales"` // sales and voids the cashier rang in the month
	Voids        int64 `json:"voids"`
	PointsIssued int64 `json:"points_issued"` // from the KPIs
}

// FraudReport is the month's enrolment fraud signals.
type FraudReport struct {
	Month       string           `json:"month"`
	TimeZone    string           `json:"time_zone"`
	AsOf        time.Time        `json:"as_of"`
	Settings    FraudSettings    `json:"settings"`
	MaskedPII   bool             `json:"masked_pii"`
	Enrolments  int              `json:"enrolments"`
	Flagged     int              `json:"flagged"`
	Cashiers    []FraudCashier   `json:"cashiers"`
	FlaggedList []FraudEnrolment `json:"flagged_enrolments"`
	// Repeats counts the member codes used at a second till that HQ
	// received in the month (see fraudrepeats.go), per till and each.
	Repeats     int               `json:"member_code_repeats"`
	RepeatTills []FraudRepeatTill `json:"member_code_repeat_tills"`
	RepeatList  []FraudRepeat     `json:"member_code_repeat_list"`
}

// ErrNoFraudFacts: the storage keeps no enrolment facts.
var ErrNoFraudFacts = errors.New("hq: this storage keeps no enrolment facts for fraud signals; use the bbolt or PostgreSQL store")

// FraudReport builds the report for month "YYYY-MM" ("" = the current
// month) with the server's thresholds overridden by the non-zero fields of
// over; pii shows mobiles unmasked.
func (s *Server) FraudReport(ctx context.Context, month string, over FraudSettings, pii bool) (*FraudReport, error) {
	fs, ok := s.st.(FraudStore)
	if !ok {
		return nil, ErrNoFraudFacts
	}
	set := s.o.Fraud
	for _, p := range [][2]*int{{&set.NoPurchaseDays, &over.NoPurchaseDays}, {&set.RunGap, &over.RunGap}, {&set.RunMin, &over.RunMin},
		{&set.PrefixLen, &over.PrefixLen}, {&set.PrefixMin, &over.PrefixMin}, {&set.BurstCount, &over.BurstCount}, {&set.BurstMinutes, &over.BurstMinutes}} {
		if *p[1] != 0 {
			*p[0] = *p[1]
		}
	}
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	set = set.WithDefaults()
	now := s.o.Now()
	if month == "" {
		month = now.In(s.loc).Format("2006-01")
	}
	start, err := time.ParseInLocation("2006-01", month, s.loc)
	if err != nil {
		return nil, fmt.Errorf("%w: month %q: want YYYY-MM", errBadRequest, month)
	}
	asOf := now
	kpi, err := s.KPIs(ctx, month)
	if err != nil {
		return nil, err
	}
	facts, counts, err := fs.FraudMonth(ctx, start.Format("2006-01"))
	if err != nil {
		return nil, err
	}
	var mobiles, tokens []string
	for _, f := range facts {
		if f.Mobile != "" {
			mobiles = append(mobiles, f.Mobile)
		}
		tokens = append(tokens, f.CardTokens...)
	}
	var related []EnrolFact
	if len(mobiles)+len(tokens) > 0 {
		if related, err = fs.FraudRelated(ctx, mobiles, tokens); err != nil {
			return nil, err
		}
	}
	found := DetectFraud(facts, related, set, asOf)
	rep := &FraudReport{Month: month, TimeZone: s.loc.String(), AsOf: asOf.UTC(), Settings: set, MaskedPII: !pii,
		Cashiers: []FraudCashier{}, FlaggedList: []FraudEnrolment{}, RepeatTills: []FraudRepeatTill{}, RepeatList: []FraudRepeat{}}
	if err := s.fraudRepeats(ctx, rep, start, start.AddDate(0, 1, 0)); err != nil {
		return nil, err
	}
	cs := map[[2]string]*FraudCashier{}
	cashier := func(store, id string) *FraudCashier {
		k := [2]string{store, id}
		c := cs[k]
		if c == nil {
			c = &FraudCashier{Store: store, Cashier: id, Signals: map[string]int{}}
			for _, sig := range FraudSignals {
				c.Signals[sig] = 0
			}
			cs[k] = c
		}
		return c
	}
	for _, f := range facts {
		c := cashier(f.Store, f.Cashier)
		c.Enrolments++
		rep.Enrolments++
		fd := found[f.Member]
		if fd.Pending {
			c.Pending++
		}
		if !f.FirstSale.IsZero() && !f.FirstSale.After(f.At.AddDate(0, 0, set.NoPurchaseDays)) {
			c.FirstPurchases++
		}
		if len(fd.Signals) == 0 {
			continue
		}
		c.Flagged++
		rep.Flagged++
		for _, sig := range fd.Signals {
			c.Signals[sig]++
		}
		mobile := f.Mobile
		if !pii {
			mobile = maskMiddle(mobile, 3, 4)
		}
		rep.FlaggedList = append(rep.FlaggedList, FraudEnrolment{Member: f.Member, Store: f.Store, Cashier: f.Cashier,
			Entry: fmt.Sprintf("%s/%s/%d", f.Store, f.Till, f.Seq), EnrolledAt: f.At.UTC(), Mobile: mobile,
			Signals: fd.Signals, FirstSale: f.FirstSale, Sales: f.Sales, Voids: f.Voids, Earlier: fd.Earlier})
	}
	for _, k := range counts {
		c := cashier(k.Store, k.Cashier)
		c.Sales += k.Sales
		c.Voids += k.Voids
	}
	for _, k := range kpi.Cashiers {
		cashier(k.Store, k.Cashier).PointsIssued = k.PointsIssued
	}
	for _, c := range cs {
		rep.Cashiers = append(rep.Cashiers, *c)
	}
	sort.Slice(rep.Cashiers, func(i, j int) bool {
		a, b := rep.Cashiers[i], rep.Cashiers[j]
		if a.Store != b.Store {
			return a.Store < b.Store
		}
		return a.Cashier < b.Cashier
	})
	sort.Slice(rep.FlaggedList, func(i, j int) bool {
		a, b := rep.FlaggedList[i], rep.FlaggedList[j]
		if a.Store != b.Store {
			return a.Store < b.Store
		}
		if a.Cashier != b.Cashier {
			return a.Cashier < b.Cashier
		}
		if !a.EnrolledAt.Equal(b.EnrolledAt) {
			return a.EnrolledAt.Before(b.EnrolledAt)
		}
		return a.Member < b.Member
	})
	return rep, nil
}

// errBadRequest marks errors the caller's input caused.
var errBadRequest = errors.New("bad request")

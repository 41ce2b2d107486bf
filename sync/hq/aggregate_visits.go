package hq

import (
	"encoding/json"
	"slices"
	"sort"

	"posagent/ledger/entry"
)

// Stores keep a member's fact in parts so that a sale costs the same
// however long the member's history and however many stores they bought
// at: the head (enrolment and home store, MemberFact.Head) and visit
// records, one per member, month and store (that store's visits that
// month) and one per member and month for the chain (Days that month,
// store ""). A fold reads the head and only the records its windowed
// refold looks at (VisitWindows): of the stores whose visits move, the
// months around the changed days; of the chain, the same months and the
// nearest month with a visit on either side, whose last or first visit is
// the activity next to the window. An enrolment that changes moves every
// life-cycle span, so a member with an enrolment in the batch has every
// chain record read; that happens about once per member.

// VisitKey names a visit record of a member: the store's visits in the
// month beginning Month, or the chain's when Store is "".
type VisitKey struct {
	Store string
	Month Day
}

func (a VisitKey) compare(b VisitKey) int {
	if a.Store != b.Store {
		if a.Store < b.Store {
			return -1
		}
		return 1
	}
	return int(a.Month) - int(b.Month)
}

// VisitWindow is the part of a member's visits a fold needs: the records
// of Stores for the months From through To (first days), and the chain's
// for those months and the nearest month with visits before From and after
// To; Whole: every chain record.
type VisitWindow struct {
	From, To Day
	Stores   []string // sorted
	Whole    bool
}

// Equal reports whether w and v read the same.
func (w VisitWindow) Equal(v VisitWindow) bool {
	return w.From == v.From && w.To == v.To && w.Whole == v.Whole && slices.Equal(w.Stores, v.Stores)
}

// VisitWindows lists, for every member whose visits folding es may move
// or whose enrolment it may change, the visits the fold reads. sales holds
// the stored sales' facts as for Fold (AggSaleIDs(es)); sales in es are
// taken from es, so with sales nil it is what es alone tells.
func (c AggConfig) VisitWindows(es []entry.Entry, sales map[string]*SaleFact) map[string]VisitWindow {
	loc := c.loc()
	type span struct {
		lo, hi Day
		stores []string
	}
	days := map[string]*span{}
	whole := map[string]bool{}
	see := func(member, store string, d Day) {
		if member == "" {
			return
		}
		s := days[member]
		if s == nil {
			s = &span{lo: d, hi: d}
			days[member] = s
		}
		s.lo, s.hi = min(s.lo, d), max(s.hi, d)
		if !slices.Contains(s.stores, store) {
			s.stores = append(s.stores, store)
		}
	}
	inBatch := map[string]bool{}
	for i := range es {
		if e := &es[i]; e.Sale != nil {
			inBatch[e.ID()] = true
			see(e.MemberID, e.Store, EntryDay(e, loc))
		}
	}
	fact := func(id string) {
		if inBatch[id] {
			return // seen above
		}
		if s := sales[id]; s != nil && s.Seen {
			see(s.Member, s.Store, s.Day)
		}
	}
	for i := range es {
		e := &es[i]
		switch {
		case e.Sale != nil:
			if s := sales[e.ID()]; s != nil && s.Seen { // a fact of an earlier copy, should one exist
				see(s.Member, s.Store, s.Day)
			}
		case e.Refund != nil:
			fact(e.Refund.SaleEntry)
		case e.Void != nil:
			fact(e.Void.SaleEntry)
		case e.Enrol != nil:
			whole[enrolID(e)] = true
		}
	}
	out := make(map[string]VisitWindow, len(days)+len(whole))
	for id := range whole {
		out[id] = VisitWindow{Whole: true}
	}
	for id, s := range days {
		lo := Day(max(int64(s.lo)-windowMargin, int64(noDay)+1))
		hi := Day(min(int64(s.hi)+windowMargin, int64(^uint32(0)>>1)))
		slices.Sort(s.stores)
		out[id] = VisitWindow{From: lo.Month(), To: hi.Month(), Stores: s.stores, Whole: whole[id]}
	}
	return out
}

// Head is the member's fact without its visits.
func (m *MemberFact) Head() MemberFact {
	return MemberFact{Enrolled: m.Enrolled, EnrolDay: m.EnrolDay, Home: m.Home}
}

// months lists the months (first days) of vs, in order.
func months(vs []Visit) []Day {
	var out []Day
	for _, v := range vs {
		if mo := v.Day.Month(); len(out) == 0 || out[len(out)-1] != mo {
			out = append(out, mo)
		}
	}
	return out
}

// inMonth is the part of the sorted vs in the month beginning month.
func inMonth(vs []Visit, month Day) []Visit {
	next := month.NextMonth()
	i0 := sort.Search(len(vs), func(i int) bool { return vs[i].Day >= month })
	i1 := sort.Search(len(vs), func(i int) bool { return vs[i].Day >= next })
	return vs[i0:i1]
}

// Record is the visits of one record of m (nil: none).
func (m *MemberFact) Record(k VisitKey) []Visit {
	vs := m.Days
	if k.Store != "" {
		vs = m.Visits[k.Store]
	}
	if r := inMonth(vs, k.Month); len(r) > 0 {
		return slices.Clone(r)
	}
	return nil
}

// Records lists every record of m with its visits, in key order.
func (m *MemberFact) Records() (keys []VisitKey, visits [][]Visit) {
	for _, mo := range months(m.Days) {
		keys, visits = append(keys, VisitKey{Month: mo}), append(visits, inMonth(m.Days, mo))
	}
	stores := make([]string, 0, len(m.Visits))
	for st := range m.Visits {
		stores = append(stores, st)
	}
	slices.Sort(stores)
	for _, st := range stores {
		for _, mo := range months(m.Visits[st]) {
			keys, visits = append(keys, VisitKey{st, mo}), append(visits, inMonth(m.Visits[st], mo))
		}
	}
	return keys, visits
}

// AddRecord adds one record's visits to m, for a store that reads a
// member's records in any order.
func (m *MemberFact) AddRecord(store string, vs []Visit) {
	if len(vs) == 0 {
		return
	}
	merge := func(cur []Visit) []Visit {
		sorted := len(cur) == 0 || cur[len(cur)-1].Day < vs[0].Day
		cur = append(cur, vs...)
		if !sorted {
			sort.Slice(cur, func(i, j int) bool { return cur[i].Day < cur[j].Day })
		}
		return cur
	}
	if store == "" {
		m.Days = merge(m.Days)
		return
	}
	if m.Visits == nil {
		m.Visits = map[string][]Visit{}
	}
	m.Visits[store] = merge(m.Visits[store])
}

// Window is the part of m that a fold reading w is given: its head and
// the records w names. Stores read the same from their records; tests use
// this to check that a fold given only that part gives what the whole
// fact gives.
func (m *MemberFact) Window(w VisitWindow) *MemberFact {
	out := m.Head()
	for _, st := range w.Stores {
		for mo := w.From; mo <= w.To && len(w.Stores) > 0; mo = mo.NextMonth() {
			out.AddRecord(st, m.Record(VisitKey{st, mo}))
		}
	}
	before, after := noDay, noDay
	for _, mo := range months(m.Days) {
		switch {
		case w.Whole || (len(w.Stores) > 0 && mo >= w.From && mo <= w.To):
			out.AddRecord("", m.Record(VisitKey{Month: mo}))
		case mo < w.From:
			before = mo
		case mo > w.To && after == noDay:
			after = mo
		}
	}
	for _, mo := range []Day{before, after} {
		if mo != noDay && !w.Whole && len(w.Stores) > 0 {
			out.AddRecord("", m.Record(VisitKey{Month: mo}))
		}
	}
	return &out
}

// EncodeVisits is a record's stored form: [[day, n], ...].
func EncodeVisits(vs []Visit) []byte {
	b, _ := json.Marshal(vs) // days and counts: cannot fail
	return b
}

// DecodeVisits reads EncodeVisits' form.
func DecodeVisits(b []byte) ([]Visit, error) {
	var vs []Visit
	err := json.Unmarshal(b, &vs)
	return vs, err
}

// VisitRecord names one visit record of a member.
type VisitRecord struct {
	Member string
	VisitKey
}

// ChangedRecords lists the visit records the fold changed, in order, each
// with what it now holds (nil: delete it).
func (r *AggFold) ChangedRecords(f *AggFacts) (keys []VisitRecord, visits [][]Visit) {
	for _, id := range r.Members {
		for _, k := range r.Changed[id] {
			keys = append(keys, VisitRecord{id, k})
			visits = append(visits, f.Members[id].Record(k))
		}
	}
	return keys, visits
}

package hq

import (
	"encoding/json"
	"slices"
	"sort"

	"posagent/ledger/entry"
)

// Stores keep a member's fact in two parts so that a sale costs the same
// however long the member's history: the head (enrolment and home store,
// MemberFact without Visits) and one record of visits per member and month
// (MonthVisits). A fold reads the head and only the months its windowed
// refold looks at (VisitWindows): the months around the changed days and,
// on either side, the nearest month with a visit, whose last or first
// visit is the activity next to the window. An enrolment that changes
// moves every life-cycle span, so a member with an enrolment in the batch
// is read whole; that happens about once per member.

// VisitWindow is the part of a member's visits a fold needs: the months
// From through To (first days) and the nearest month with visits before
// From and after To; Whole: every month.
type VisitWindow struct {
	From, To Day
	Whole    bool
}

// VisitWindows lists, for every member whose visits folding es may move
// or whose enrolment it may change, the visits the fold reads. sales holds
// the stored sales' facts as for Fold (AggSaleIDs(es)); sales in es are
// taken from es, so with sales nil it is what es alone tells.
func (c AggConfig) VisitWindows(es []entry.Entry, sales map[string]*SaleFact) map[string]VisitWindow {
	loc := c.loc()
	type span struct{ lo, hi Day }
	days := map[string]*span{}
	whole := map[string]bool{}
	see := func(member string, d Day) {
		if member == "" {
			return
		}
		if s := days[member]; s != nil {
			s.lo, s.hi = min(s.lo, d), max(s.hi, d)
			return
		}
		days[member] = &span{d, d}
	}
	inBatch := map[string]*entry.Entry{}
	for i := range es {
		if e := &es[i]; e.Sale != nil {
			inBatch[e.ID()] = e
			see(e.MemberID, EntryDay(e, loc))
		}
	}
	fact := func(id string) {
		if _, ok := inBatch[id]; ok {
			return // seen above
		}
		if s := sales[id]; s != nil && s.Seen {
			see(s.Member, s.Day)
		}
	}
	for i := range es {
		e := &es[i]
		switch {
		case e.Sale != nil:
			fact(e.ID()) // a fact of an earlier copy, should one exist
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
		if whole[id] {
			continue
		}
		lo := Day(max(int64(s.lo)-windowMargin, int64(noDay)+1))
		hi := Day(min(int64(s.hi)+windowMargin, int64(^uint32(0)>>1)))
		out[id] = VisitWindow{From: lo.Month(), To: hi.Month()}
	}
	return out
}

// Covers reports whether w reads at least what v reads.
func (w VisitWindow) Covers(v VisitWindow) bool {
	return w.Whole || (!v.Whole && w.From <= v.From && v.To <= w.To)
}

// Head is the member's fact without its visits.
func (m *MemberFact) Head() MemberFact {
	return MemberFact{Enrolled: m.Enrolled, EnrolDay: m.EnrolDay, Home: m.Home}
}

// Months lists the months (first days) with a visit, in order.
func (m *MemberFact) Months() []Day {
	var out []Day
	for _, vs := range m.Visits {
		for _, v := range vs {
			out = append(out, v.Day.Month())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// MonthVisits is the member's visits in the month beginning month, per
// store (nil: none).
func (m *MemberFact) MonthVisits(month Day) map[string][]Visit {
	var out map[string][]Visit
	next := month.NextMonth()
	for st, vs := range m.Visits {
		i0 := sort.Search(len(vs), func(i int) bool { return vs[i].Day >= month })
		i1 := sort.Search(len(vs), func(i int) bool { return vs[i].Day >= next })
		if i0 < i1 {
			if out == nil {
				out = map[string][]Visit{}
			}
			out[st] = slices.Clone(vs[i0:i1])
		}
	}
	return out
}

// AddMonth adds one month's visits (as MonthVisits gives them) to m, for
// a store that reads a member's months in any order.
func (m *MemberFact) AddMonth(mv map[string][]Visit) {
	if len(mv) == 0 {
		return
	}
	if m.Visits == nil {
		m.Visits = map[string][]Visit{}
	}
	for st, vs := range mv {
		cur := m.Visits[st]
		if len(cur) > 0 && len(vs) > 0 && cur[len(cur)-1].Day >= vs[0].Day {
			cur = append(cur, vs...)
			sort.Slice(cur, func(i, j int) bool { return cur[i].Day < cur[j].Day })
		} else {
			cur = append(cur, vs...)
		}
		m.Visits[st] = cur
	}
}

// Window is the part of m that a fold reading w is given: its head and
// the visits of w. Stores read the same from their month records; tests
// use this to check that a fold given only that part gives what the whole
// fact gives.
func (m *MemberFact) Window(w VisitWindow) *MemberFact {
	out := m.Head()
	if w.Whole {
		for _, month := range m.Months() {
			out.AddMonth(m.MonthVisits(month))
		}
		return &out
	}
	var before, after = noDay, noDay
	for _, month := range m.Months() {
		switch {
		case month < w.From:
			before = month
		case month > w.To:
			if after == noDay {
				after = month
			}
		default:
			out.AddMonth(m.MonthVisits(month))
		}
	}
	for _, month := range []Day{before, after} {
		if month != noDay {
			out.AddMonth(m.MonthVisits(month))
		}
	}
	return &out
}

// EncodeMonth is a month record's stored form: {"store": [[day, n], ...]}.
func EncodeMonth(mv map[string][]Visit) []byte {
	b, _ := json.Marshal(mv) // days and counts: cannot fail
	return b
}

// DecodeMonth reads EncodeMonth's form.
func DecodeMonth(b []byte) (map[string][]Visit, error) {
	var mv map[string][]Visit
	err := json.Unmarshal(b, &mv)
	return mv, err
}

// VisitMonth names one month record of a member.
type VisitMonth struct {
	Member string
	Month  Day
}

// ChangedMonths lists the month records whose visits the fold changed,
// in order, each with what it now holds (nil: delete it).
func (r *AggFold) ChangedMonths(f *AggFacts) (keys []VisitMonth, visits []map[string][]Visit) {
	for _, id := range r.Members {
		for _, month := range r.Months[id] {
			keys = append(keys, VisitMonth{id, month})
			visits = append(visits, f.Members[id].MonthVisits(month))
		}
	}
	return keys, visits
}

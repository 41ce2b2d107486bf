package hq

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"posagent/ledger/entry"
)

// ErrOverflow: applying entries would take a member's balance (or a sum of
// balance deltas) outside the int64 range. The stores check before they
// write, and set such an entry aside as a dead letter (see Settle).
var ErrOverflow = errors.New("hq: balance out of range")

// add is a+b, or false when the sum leaves the int64 range.
func add(a, b int64) (int64, bool) {
	s := a + b
	// Overflow happened iff both operands have the sign the sum lacks.
	return s, (a^s)&(b^s) >= 0
}

// memberOf is the member whose balances an entry changes ("" for none).
func memberOf(e *entry.Entry) string {
	switch {
	case e.MemberID != "":
		return e.MemberID
	case e.Enrol != nil:
		return e.Enrol.Member.ID
	case e.Coupon != nil:
		return e.Coupon.Coupon.MemberID
	}
	return ""
}

// Delta is what a set of entries does to one member. Balances add up, so
// batches from different stores can apply in any order; the rest merges
// order-independently too (tier by time, coupons by counting uses).
type Delta struct {
	MemberID    string
	Points      int64
	StoredValue int64
	LastSale    time.Time // latest sale, zero if none

	Enrol           *entry.Member
	Tier            string // latest tier change, "" if none
	TierAt          time.Time
	CouponsIssued   []entry.MemberCoupon
	CouponsUsed     []string
	CouponsRestored []string
}

// Structural reports whether the delta changes more than balances.
func (d Delta) Structural() bool {
	return d.Enrol != nil || d.Tier != "" || len(d.CouponsIssued) > 0 || len(d.CouponsUsed) > 0 || len(d.CouponsRestored) > 0
}

// Identity reports whether the delta changes who the member is at a till
// (an enrolment or a tier change): what the identity feed carries.
func (d Delta) Identity() bool { return d.Enrol != nil || d.Tier != "" }

// Deltas folds entries into one delta per member, sorted by member id (the
// order stores lock rows in, so concurrent batches cannot deadlock). A sum
// that leaves the int64 range is an error wrapping ErrOverflow.
func Deltas(es []entry.Entry) ([]Delta, error) {
	by := map[string]*Delta{}
	get := func(id string) *Delta {
		d := by[id]
		if d == nil {
			d = &Delta{MemberID: id}
			by[id] = d
		}
		return d
	}
	for i := range es {
		e := &es[i]
		id := memberOf(e)
		if id == "" {
			continue // a non-member sale touches no balance
		}
		d := get(id)
		var ok1, ok2 bool
		d.Points, ok1 = add(d.Points, e.PointsDelta)
		d.StoredValue, ok2 = add(d.StoredValue, e.StoredValueDelta)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: the entries of member %s sum beyond it", ErrOverflow, id)
		}
		switch {
		case e.Sale != nil:
			if e.At.After(d.LastSale) {
				d.LastSale = e.At
			}
			if e.Sale.CouponID != "" {
				d.CouponsUsed = append(d.CouponsUsed, e.Sale.CouponID)
			}
		case e.Refund != nil:
			if e.Refund.CouponRestored != "" {
				d.CouponsRestored = append(d.CouponsRestored, e.Refund.CouponRestored)
			}
		case e.Void != nil:
			if e.Void.CouponRestored != "" {
				d.CouponsRestored = append(d.CouponsRestored, e.Void.CouponRestored)
			}
		case e.Enrol != nil:
			m := e.Enrol.Member
			m.ID = id
			if m.EnrolledAt == "" {
				m.EnrolledAt = e.At.UTC().Format(time.RFC3339)
			}
			if m.ReferrerID == "" {
				m.ReferrerID = e.Enrol.ReferrerID
			}
			d.Enrol = &m
		case e.Coupon != nil:
			c := e.Coupon.Coupon
			c.MemberID = id
			d.CouponsIssued = append(d.CouponsIssued, c)
		case e.Tier != nil:
			if d.Tier == "" || !e.At.Before(d.TierAt) {
				d.Tier, d.TierAt = e.Tier.To, e.At
			}
		}
	}
	out := make([]Delta, 0, len(by))
	for _, d := range by {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MemberID < out[j].MemberID })
	return out, nil
}

// ApplyBalances adds the delta's balances to m and flags a balance below
// zero. Stores that update balances in SQL mirror exactly this rule. A
// balance that would leave the int64 range is an error wrapping
// ErrOverflow, and m is left as it was.
func (m *Member) ApplyBalances(d Delta) error {
	p, ok1 := add(m.Points, d.Points)
	sv, ok2 := add(m.StoredValue, d.StoredValue)
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: member %s holds %d points and %d fen, the entries add %d and %d", ErrOverflow, m.ID, m.Points, m.StoredValue, d.Points, d.StoredValue)
	}
	m.Points, m.StoredValue = p, sv
	if m.Points < 0 || m.StoredValue < 0 {
		m.Flagged = true
	}
	if d.LastSale.After(m.LastSale) {
		m.LastSale = d.LastSale.UTC()
	}
	return nil
}

// ApplyStructure merges enrolment, tier and coupons. A coupon used more
// times than it was given back (double use offline) flags the member.
func (m *Member) ApplyStructure(d Delta) {
	if d.Enrol != nil {
		data := *d.Enrol
		if m.Data != nil && !m.TierAt.IsZero() {
			data.Tier = m.Data.Tier // a tier change already seen wins over the enrolment tier
		}
		m.Data = &data
	}
	if d.Tier != "" && (m.TierAt.IsZero() || !d.TierAt.Before(m.TierAt)) {
		if m.Data == nil {
			m.Data = &entry.Member{ID: m.ID}
		}
		m.Data.Tier = d.Tier
		m.TierAt = d.TierAt.UTC()
	}
	find := func(id string) *CouponState {
		for i := range m.Coupons {
			if m.Coupons[i].ID == id {
				return &m.Coupons[i]
			}
		}
		m.Coupons = append(m.Coupons, CouponState{MemberCoupon: entry.MemberCoupon{ID: id, MemberID: m.ID}})
		return &m.Coupons[len(m.Coupons)-1]
	}
	for _, c := range d.CouponsIssued {
		s := find(c.ID)
		s.MemberCoupon, s.Known = c, true
	}
	for _, id := range d.CouponsUsed {
		s := find(id)
		s.Uses++
		if s.Uses-s.Restores > 1 {
			m.Flagged = true
		}
	}
	for _, id := range d.CouponsRestored {
		find(id).Restores++
	}
}

// Apply applies the whole delta; on ErrOverflow nothing.
func (m *Member) Apply(d Delta) error {
	if err := m.ApplyBalances(d); err != nil {
		return err
	}
	m.ApplyStructure(d)
	return nil
}

// Balance is a member's points and stored value.
type Balance struct{ Points, StoredValue int64 }

// Fits reports whether adding d to the balance stays inside int64.
func (b Balance) Fits(d Delta) bool {
	_, ok1 := add(b.Points, d.Points)
	_, ok2 := add(b.StoredValue, d.StoredValue)
	return ok1 && ok2
}

// BalanceMembers lists, sorted, the members whose balances the entries of
// b beyond acked change: the balances Settle needs.
func BalanceMembers(b Batch, acked uint64) []string {
	seen := map[string]bool{}
	var ids []string
	for _, it := range b.Items {
		if it.Seq <= acked || it.Entry == nil {
			continue
		}
		if id := memberOf(it.Entry); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Settle sets aside what a batch cannot apply. Going through the entries of
// b beyond acked in order, from the balances in bal (a member missing holds
// nothing), each entry that would take its member's points or stored value
// outside the int64 range (or the batch's sum of them for that member)
// becomes a dead letter and the entries after it apply as if it had not
// come, so Deltas of what is left folds and fits. It returns the batch to store and how many
// entries it set aside. The stores call it when the batch's deltas do not
// fit the balances as they stand, so a batch never fails over it (the till
// would resend it for ever) and a balance never wraps.
func Settle(b Batch, acked uint64, bal map[string]Balance) (Batch, int) {
	cur := make(map[string]Balance, len(bal))
	for id, v := range bal {
		cur[id] = v
	}
	sum := map[string]Balance{} // what the kept entries add: Deltas must fold them too
	out := b
	out.Items = make([]Item, len(b.Items))
	copy(out.Items, b.Items)
	n := 0
	for i := range out.Items {
		it := &out.Items[i]
		if it.Seq <= acked || it.Entry == nil {
			continue
		}
		e := it.Entry
		id := memberOf(e)
		if id == "" {
			continue
		}
		v, f := cur[id], sum[id]
		p, ok1 := add(v.Points, e.PointsDelta)
		sv, ok2 := add(v.StoredValue, e.StoredValueDelta)
		fp, ok3 := add(f.Points, e.PointsDelta)
		fsv, ok4 := add(f.StoredValue, e.StoredValueDelta)
		if ok1 && ok2 && ok3 && ok4 {
			cur[id], sum[id] = Balance{Points: p, StoredValue: sv}, Balance{Points: fp, StoredValue: fsv}
			continue
		}
		raw, err := json.Marshal(e)
		if err != nil {
			raw = []byte("null")
		}
		it.Raw, it.Entry = raw, nil
		it.Reason = fmt.Sprintf("applying it would take member %s beyond the balance range HQ holds (holds %d points and %d fen; the entry adds %d and %d)",
			id, v.Points, v.StoredValue, e.PointsDelta, e.StoredValueDelta)
		n++
	}
	return out, n
}

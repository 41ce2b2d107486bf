package hq

import (
	"sort"
	"time"

	"posagent/ledger/entry"
)

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

// Deltas folds entries into one delta per member, sorted by member id (the
// order stores lock rows in, so concurrent batches cannot deadlock).
func Deltas(es []entry.Entry) []Delta {
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
		id := e.MemberID
		if id == "" && e.Enrol != nil {
			id = e.Enrol.Member.ID
		}
		if id == "" && e.Coupon != nil {
			id = e.Coupon.Coupon.MemberID
		}
		if id == "" {
			continue // a non-member sale touches no balance
		}
		d := get(id)
		d.Points += e.PointsDelta
		d.StoredValue += e.StoredValueDelta
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
	return out
}

// ApplyBalances adds the delta's balances to m and flags a balance below
// zero. Stores that update balances in SQL mirror exactly this rule.
func (m *Member) ApplyBalances(d Delta) {
	m.Points += d.Points
	m.StoredValue += d.StoredValue
	if m.Points < 0 || m.StoredValue < 0 {
		m.Flagged = true
	}
	if d.LastSale.After(m.LastSale) {
		m.LastSale = d.LastSale.UTC()
	}
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

// Apply applies the whole delta.
func (m *Member) Apply(d Delta) {
	m.ApplyBalances(d)
	m.ApplyStructure(d)
}

// Package hqtest holds the conformance suite every hq.Store passes, and
// entry builders for HQ tests and the load program.
package hqtest

import (
	"fmt"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// Shanghai is the default store zone.
var Shanghai = time.FixedZone("CST", 8*3600)

// Till builds consecutive entries of one till.
type Till struct {
	Store, Till string
	Seq         uint64
	Cashier     string
}

func (t *Till) base(kind entry.Kind, member string, at time.Time) entry.Entry {
	t.Seq++
	c := t.Cashier
	if c == "" {
		c = "c1"
	}
	return entry.Entry{Store: t.Store, Till: t.Till, Seq: t.Seq, Kind: kind, MemberID: member, Cashier: c,
		At: at.UTC(), Local: at.In(Shanghai).Format(time.RFC3339)}
}

// key is the receipt (or top-up) id of e: unique per store, and valid
// under the id rule (an entry ID has slashes).
func (t *Till) key(e *entry.Entry) string {
	return fmt.Sprintf("R-%s-%s-%d", t.Store, t.Till, e.Seq)
}

// Sale is a one-line sale of due fen that earns points and redeems redeem
// points, paying sv fen from stored value; coupon may name a coupon used.
func (t *Till) Sale(member string, at time.Time, due, points, redeem, sv int64, coupon string) entry.Entry {
	e := t.base(entry.KindSale, member, at)
	e.Key = t.key(&e)
	e.PointsDelta = points - redeem
	e.StoredValueDelta = -sv
	e.Sale = &entry.Sale{ReceiptID: e.Key, Lines: []entry.SaleLine{{LineNo: 1, SKU: "SKU1", Qty: 1, UnitPrice: due, Gross: due, Net: due, Paid: due, EarnedPoints: points, RedeemPoints: redeem}},
		Gross: due, Due: due, StoredValue: sv, PointsEarned: points, RedeemPoints: redeem, RedeemValue: redeem, Multiplier: 1, CouponID: coupon, EarnBase: due}
	return e
}

// Enrol enrols a member.
func (t *Till) Enrol(member string, at time.Time) entry.Entry {
	e := t.base(entry.KindEnrol, member, at)
	e.Key = "enrol-" + member
	e.Enrol = &entry.Enrol{Member: entry.Member{ID: member, Name: "Member " + member, Tier: "silver", Mobile: "13800001234", EnrolledAt: at.UTC().Format(time.RFC3339)}}
	return e
}

// TopUp adds stored value (amount plus bonus).
func (t *Till) TopUp(member string, at time.Time, amount, bonus int64) entry.Entry {
	e := t.base(entry.KindTopUp, member, at)
	e.Key = t.key(&e)
	e.StoredValueDelta = amount + bonus
	e.TopUp = &entry.TopUp{TopUpID: e.Key, Amount: amount, Bonus: bonus}
	return e
}

// Points is a points adjustment (bonus if positive).
func (t *Till) Points(member string, at time.Time, pts int64, reason string) entry.Entry {
	e := t.base(entry.KindPointsAdjust, member, at)
	e.PointsDelta = pts
	e.Points = &entry.PointsChange{Reason: reason, Points: pts}
	return e
}

// Coupon issues a coupon to the member.
func (t *Till) Coupon(member, id string, at time.Time, value int64) entry.Entry {
	e := t.base(entry.KindCouponIssued, member, at)
	e.Coupon = &entry.CouponIssued{Reason: "welcome", Coupon: entry.MemberCoupon{ID: id, MemberID: member, Name: "welcome", Value: value,
		ValidFrom: at.UTC().Format(time.RFC3339), ValidUntil: at.AddDate(0, 0, 30).UTC().Format(time.RFC3339)}}
	return e
}

// Tier moves a member between tiers.
func (t *Till) Tier(member string, at time.Time, from, to string) entry.Entry {
	e := t.base(entry.KindTierChange, member, at)
	e.Tier = &entry.TierChange{From: from, To: to, Reason: "upgrade"}
	return e
}

// Void voids the sale s in full.
func (t *Till) Void(s entry.Entry, at time.Time) entry.Entry {
	e := t.base(entry.KindVoid, s.MemberID, at)
	e.PointsDelta = -s.PointsDelta
	e.StoredValueDelta = -s.StoredValueDelta
	e.Void = &entry.Void{SaleKey: s.Key, SaleEntry: s.ID(), PointsReversed: s.Sale.PointsEarned, PointsRestored: s.Sale.RedeemPoints,
		StoredValue: s.Sale.StoredValue, CouponRestored: s.Sale.CouponID}
	return e
}

// Batch wraps consecutive entries of one till as a checked batch.
func Batch(es ...entry.Entry) hq.Batch {
	b := hq.Batch{Store: es[0].Store, Till: es[0].Till, First: es[0].Seq, Last: es[len(es)-1].Seq, ReceivedAt: time.Now().UTC()}
	for i := range es {
		e := es[i]
		b.Items = append(b.Items, hq.Item{Seq: e.Seq, Entry: &e})
	}
	return b
}

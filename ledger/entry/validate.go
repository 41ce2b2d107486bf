package entry

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"posagent/ledger/loyalty"
)

// Bounds of what a till writes. Validate holds every entry to them: the
// ledger before it writes one, HQ before it applies an upload. Amounts and
// points are the pricing engine's own limits, so an entry a till can price
// always passes, and sums of a batch's worth of entries are far from the
// int64 range (HQ still checks every sum).
const (
	MaxAmount = loyalty.MaxAmount // fen: a line, a sale, a refund, a top-up or its bonus
	MaxPoints = loyalty.MaxPoints // points of one entry, line or lot use
	MaxQty    = loyalty.MaxQty    // units of one line
	MaxLines  = loyalty.MaxLines  // lines of one sale or refund
	// MaxRefLen bounds member, coupon and lot ids and entry references: the
	// ledger's own limit for the ids it stores.
	MaxRefLen = 200
	// MaxTextLen bounds free text the till stores as given (SKUs, names,
	// tiers, reasons, card tokens, dates).
	MaxTextLen = 4096
	// MaxList bounds the other lists of an entry (reasons, lots used, card
	// tokens, coupon SKUs).
	MaxList = 100_000
	// MaxMultiplier bounds a sale's points multiplier (programs allow 1..100).
	MaxMultiplier = 10_000
	// MaxProgramVersion is the highest program version a program file may name.
	MaxProgramVersion = 1_000_000_000
)

// MinAt and MaxAt bound an entry's time: any clock a till can run on (a
// till whose battery died starts at 1970), and inside what JSON, RFC 3339
// and the stores' time columns hold.
var (
	MinAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// FieldError is a field of an entry that breaks a rule. Field is its JSON
// path, e.g. "sale.lines[2].qty". ID marks an id that breaks the id rule
// (store, till, cashier, receipt and the other keys a POS gives).
type FieldError struct {
	Entry string
	Field string
	Msg   string
	ID    bool
}

func (e *FieldError) Error() string {
	if e.Entry == "" {
		return fmt.Sprintf("entry: %s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("entry %s: %s: %s", e.Entry, e.Field, e.Msg)
}

// Validate checks every field of the entry against what a till writes:
// ids, kind and payload, signs and bounds of amounts and points, balance
// deltas equal to what the payload implies, line counts, string lengths and
// times. It is used by the ledger before writing and by HQ before accepting
// an upload, so a malformed record is rejected with the same words on both
// sides. The error is a *FieldError.
//
// An id that breaks the id rule is reported before any other error, so HQ
// can refuse the upload for it (an id is never kept, not even as a dead
// letter) rather than set the entry aside.
func (e *Entry) Validate() error {
	v := validator{e: e}
	v.check()
	err := v.err
	if v.idErr != nil {
		err = v.idErr
	}
	if err == nil {
		return nil
	}
	if e.Store != "" && e.Till != "" && e.Seq != 0 && err.Field != "store" && err.Field != "till" {
		err.Entry = e.ID()
	}
	return err
}

type validator struct {
	e     *Entry
	err   *FieldError // the first error
	idErr *FieldError // the first id that breaks the id rule
}

func (v *validator) fail(field, format string, a ...any) {
	if v.err == nil {
		v.err = &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
	}
}

func (v *validator) failID(field, format string, a ...any) {
	if v.idErr == nil {
		v.idErr = &FieldError{Field: field, ID: true, Msg: fmt.Sprintf(format, a...)}
	}
}

// id checks a store, till or cashier id (max MaxIDLen) or a POS id such as
// a receipt id (MaxKeyLen).
func (v *validator) id(field, s string, max int) {
	if !validName(s, max) {
		v.failID(field, "%q is not a valid id (%s)", s, IDRule(max))
	}
}

func (v *validator) optID(field, s string, max int) {
	if s != "" {
		v.id(field, s, max)
	}
}

// ref checks a member, coupon or lot id: the ledger's rule for the ids it
// keeps (set, at most MaxRefLen bytes, no NUL).
func (v *validator) ref(field, s string) {
	switch {
	case s == "":
		v.fail(field, "is required")
	case len(s) > MaxRefLen:
		v.fail(field, "is %d bytes; at most %d", len(s), MaxRefLen)
	case strings.IndexByte(s, 0) >= 0:
		v.fail(field, "contains a NUL character")
	}
}

func (v *validator) optRef(field, s string) {
	if s != "" {
		v.ref(field, s)
	}
}

// text checks free text: bounded, and without NUL, which no text column
// or JSON document in HQ's stores can hold.
func (v *validator) text(field, s string, max int) {
	switch {
	case len(s) > max:
		v.fail(field, "is %d bytes; at most %d", len(s), max)
	case strings.IndexByte(s, 0) >= 0:
		v.fail(field, "contains a NUL character")
	}
}

func (v *validator) in(field string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.fail(field, "%d is outside %d..%d", n, lo, hi)
	}
}

func (v *validator) count(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.fail(field, "has %d items; %d..%d allowed", n, lo, hi)
	}
}

func (v *validator) stamp(field, s string) {
	if s == "" {
		return
	}
	v.text(field, s, 64)
	if _, err := time.Parse(time.RFC3339, s); err != nil && v.err == nil {
		v.fail(field, "%q is not an RFC 3339 time", s)
	}
}

func (v *validator) lots(field string, us []LotUse) {
	v.count(field, len(us), 0, MaxList)
	for i, u := range us {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.ref(f+".lot", u.Lot)
		v.in(f+".points", u.Points, 0, MaxPoints)
	}
}

// deltas checks the balance deltas against what the payload implies: the
// member's balances move only as the payload says, and not at all without
// a member.
func (v *validator) deltas(points, sv int64) {
	e := v.e
	if e.MemberID == "" {
		points, sv = 0, 0
	}
	if e.PointsDelta != points {
		v.fail("points_delta", "%d, but the payload makes it %d", e.PointsDelta, points)
	}
	if e.StoredValueDelta != sv {
		v.fail("stored_value_delta", "%d, but the payload makes it %d", e.StoredValueDelta, sv)
	}
}

func (v *validator) member() {
	if v.e.MemberID == "" {
		v.fail("member_id", "is required for a %s entry", v.e.Kind)
	}
}

func (v *validator) check() {
	e := v.e
	v.id("store", e.Store, MaxIDLen)
	v.id("till", e.Till, MaxIDLen)
	if e.Seq == 0 || e.Seq > math.MaxInt64 {
		v.fail("seq", "%d is outside 1..%d", e.Seq, int64(math.MaxInt64))
	}
	v.optID("key", e.Key, MaxKeyLen)
	v.optID("cashier", e.Cashier, MaxIDLen)
	v.optID("approver", e.Approver, MaxIDLen)
	if e.Approver != "" && e.Cashier == "" {
		v.fail("approver", "is set but cashier is empty: an approval is of a cashier's action")
	}
	v.optRef("member_id", e.MemberID)
	switch {
	case e.At.IsZero():
		v.fail("at", "is required")
	case e.At.Before(MinAt) || !e.At.Before(MaxAt):
		v.fail("at", "%s is outside %s..%s", e.At.UTC().Format(time.RFC3339), MinAt.Format(time.DateOnly), MaxAt.Format(time.DateOnly))
	}
	if e.Local != "" {
		v.text("local", e.Local, 64)
		if l, err := time.Parse(time.RFC3339, e.Local); err != nil {
			v.fail("local", "%q is not an RFC 3339 time with offset", e.Local)
		} else if !l.Equal(e.At.Truncate(time.Second)) {
			v.fail("local", "%s is not the instant of at (%s)", e.Local, e.At.UTC().Format(time.RFC3339))
		}
	}
	v.in("program_version", int64(e.ProgramVersion), 0, MaxProgramVersion)
	if !v.payload() {
		return
	}
	switch e.Kind {
	case KindSale:
		v.sale(e.Sale)
	case KindRefund:
		v.refund(e.Refund)
	case KindVoid:
		v.void(e.Void)
	case KindTopUp:
		t := e.TopUp
		v.member()
		v.id("topup.topup_id", t.TopUpID, MaxKeyLen)
		v.in("topup.amount", t.Amount, 1, MaxAmount)
		v.in("topup.bonus", t.Bonus, 0, MaxAmount)
		v.deltas(0, t.Amount+t.Bonus)
	case KindEnrol:
		m := e.Enrol.Member
		v.ref("enrol.member.id", m.ID)
		if e.MemberID != "" && e.MemberID != m.ID {
			v.fail("enrol.member.id", "%q, but the entry's member_id is %q", m.ID, e.MemberID)
		}
		v.text("enrol.member.name", m.Name, MaxTextLen)
		v.text("enrol.member.mobile", m.Mobile, 64)
		v.text("enrol.member.birthday", m.Birthday, 64)
		v.text("enrol.member.tier", m.Tier, MaxTextLen)
		v.optRef("enrol.member.referrer_id", m.ReferrerID)
		v.optRef("enrol.referrer_id", e.Enrol.ReferrerID)
		v.count("enrol.member.card_tokens", len(m.CardTokens), 0, MaxList)
		for i, t := range m.CardTokens {
			v.text(fmt.Sprintf("enrol.member.card_tokens[%d]", i), t, MaxTextLen)
		}
		v.stamp("enrol.member.enrolled_at", m.EnrolledAt)
		v.deltas(0, 0)
	case KindCouponIssued:
		c := e.Coupon.Coupon
		v.ref("coupon.coupon.id", c.ID)
		if e.MemberID == "" {
			v.ref("coupon.coupon.member_id", c.MemberID)
		} else {
			v.optRef("coupon.coupon.member_id", c.MemberID)
		}
		v.text("coupon.coupon.name", c.Name, MaxTextLen)
		v.in("coupon.coupon.threshold", c.Threshold, 0, MaxAmount)
		v.in("coupon.coupon.value", c.Value, 0, MaxAmount)
		v.count("coupon.coupon.skus", len(c.SKUs), 0, MaxList)
		for i, s := range c.SKUs {
			v.text(fmt.Sprintf("coupon.coupon.skus[%d]", i), s, MaxTextLen)
		}
		v.stamp("coupon.coupon.valid_from", c.ValidFrom)
		v.stamp("coupon.coupon.valid_until", c.ValidUntil)
		v.text("coupon.reason", e.Coupon.Reason, MaxTextLen)
		v.deltas(0, 0)
	case KindPointsAdjust, KindPointsExpired:
		p := e.Points
		v.member()
		lo, hi := -MaxPoints, MaxPoints
		if e.Kind == KindPointsExpired {
			hi = 0 // a write-off only takes points
		}
		v.in("points.points", p.Points, lo, hi)
		v.text("points.reason", p.Reason, MaxTextLen)
		v.optRef("points.lot", p.Lot)
		v.lots("points.lots_used", p.LotsUsed)
		v.deltas(p.Points, 0)
	case KindTierChange:
		t := e.Tier
		v.member()
		v.text("tier.from", t.From, MaxTextLen)
		v.text("tier.to", t.To, MaxTextLen)
		v.text("tier.reason", t.Reason, MaxTextLen)
		v.deltas(0, 0)
	}
}

// payload checks that exactly the payload of the kind is set.
func (v *validator) payload() bool {
	e := v.e
	var set int
	for _, p := range []bool{e.Sale != nil, e.Refund != nil, e.Void != nil, e.TopUp != nil,
		e.Enrol != nil, e.Coupon != nil, e.Points != nil, e.Tier != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		v.fail("kind", "exactly one payload must be set, found %d", set)
		return false
	}
	want := map[Kind]bool{
		KindSale: e.Sale != nil, KindRefund: e.Refund != nil, KindVoid: e.Void != nil,
		KindTopUp: e.TopUp != nil, KindEnrol: e.Enrol != nil, KindCouponIssued: e.Coupon != nil,
		KindPointsAdjust: e.Points != nil, KindPointsExpired: e.Points != nil, KindTierChange: e.Tier != nil,
	}
	ok, known := want[e.Kind]
	switch {
	case !known:
		v.fail("kind", "unknown kind %q", e.Kind)
	case !ok:
		v.fail("kind", "kind %q without its payload", e.Kind)
	}
	return known && ok
}

func (v *validator) sale(s *Sale) {
	v.id("sale.receipt_id", s.ReceiptID, MaxKeyLen)
	v.text("sale.tier", s.Tier, MaxTextLen)
	v.count("sale.lines", len(s.Lines), 1, MaxLines)
	for i := range s.Lines {
		l := &s.Lines[i]
		f := fmt.Sprintf("sale.lines[%d]", i)
		v.in(f+".line_no", int64(l.LineNo), 0, math.MaxInt32)
		v.text(f+".sku", l.SKU, MaxTextLen)
		v.in(f+".qty", l.Qty, 1, MaxQty)
		for _, x := range []struct {
			name string
			n    int64
		}{{"unit_price", l.UnitPrice}, {"gross", l.Gross}, {"discount", l.Discount}, {"net", l.Net},
			{"coupon_share", l.CouponShare}, {"redeem_share", l.RedeemShare}, {"paid", l.Paid}} {
			v.in(f+"."+x.name, x.n, 0, MaxAmount)
		}
		v.in(f+".redeem_points", l.RedeemPoints, 0, MaxPoints)
		v.in(f+".earned_points", l.EarnedPoints, 0, MaxPoints)
	}
	for _, x := range []struct {
		name string
		n    int64
	}{{"gross", s.Gross}, {"discount", s.Discount}, {"coupon_value", s.CouponValue}, {"redeem_value", s.RedeemValue},
		{"due", s.Due}, {"stored_value_paid", s.StoredValue}, {"earn_base", s.EarnBase}} {
		v.in("sale."+x.name, x.n, 0, MaxAmount)
	}
	v.optRef("sale.coupon_id", s.CouponID)
	v.in("sale.redeem_points", s.RedeemPoints, 0, MaxPoints)
	v.in("sale.points_earned", s.PointsEarned, 0, MaxPoints)
	v.in("sale.multiplier", s.Multiplier, 0, MaxMultiplier)
	v.lots("sale.lots_used", s.LotsUsed)
	v.text("sale.lot_expires_at", s.LotExpiresAt, 64)
	v.count("sale.reasons", len(s.Reasons), 0, MaxList)
	for i, r := range s.Reasons {
		v.text(fmt.Sprintf("sale.reasons[%d]", i), r, MaxTextLen)
	}
	v.deltas(s.PointsEarned-s.RedeemPoints, -s.StoredValue)
}

func (v *validator) refund(r *Refund) {
	v.id("refund.refund_id", r.RefundID, MaxKeyLen)
	v.id("refund.sale_key", r.SaleKey, MaxKeyLen)
	v.entryRef("refund.sale_entry", r.SaleEntry)
	v.count("refund.lines", len(r.Lines), 0, MaxLines)
	for i, l := range r.Lines {
		f := fmt.Sprintf("refund.lines[%d]", i)
		v.in(f+".line_no", int64(l.LineNo), 0, math.MaxInt32)
		v.in(f+".qty", l.Qty, 1, MaxQty)
		v.in(f+".amount", l.Amount, 0, MaxAmount)
		v.in(f+".points_reversed", l.PointsReversed, 0, MaxPoints)
		v.in(f+".points_restored", l.PointsRestored, 0, MaxPoints)
	}
	v.in("refund.amount", r.Amount, 0, MaxAmount)
	v.in("refund.stored_value_returned", r.StoredValue, 0, MaxAmount)
	v.in("refund.points_reversed", r.PointsReversed, 0, MaxPoints)
	v.in("refund.points_restored", r.PointsRestored, 0, MaxPoints)
	v.optRef("refund.coupon_restored", r.CouponRestored)
	v.deltas(r.PointsRestored-r.PointsReversed, r.StoredValue)
}

func (v *validator) void(x *Void) {
	v.id("void.sale_key", x.SaleKey, MaxKeyLen)
	v.entryRef("void.sale_entry", x.SaleEntry)
	v.text("void.reason", x.Reason, MaxTextLen)
	v.in("void.points_reversed", x.PointsReversed, 0, MaxPoints)
	v.in("void.points_restored", x.PointsRestored, 0, MaxPoints)
	v.in("void.stored_value_returned", x.StoredValue, 0, MaxAmount)
	v.optRef("void.coupon_restored", x.CouponRestored)
	v.deltas(x.PointsRestored-x.PointsReversed, x.StoredValue)
}

// entryRef checks an entry ID, store/till/seq, naming a sale of this
// store (a refund may be made at another till of the store).
func (v *validator) entryRef(field, s string) {
	_, _, _, err := ParseID(s)
	if err == nil && !strings.HasPrefix(s, v.e.Store+"/") {
		err = fmt.Errorf("names another store than %q", v.e.Store)
	}
	if err != nil {
		v.failID(field, "%q: %v", s, err)
	}
}

// ParseID reads an entry ID, store/till/seq.
func ParseID(s string) (store, till string, seq uint64, err error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || !ValidID(parts[0]) || !ValidID(parts[1]) {
		return "", "", 0, errors.New("an entry id is store/till/seq with valid store and till ids")
	}
	if _, err := fmt.Sscan(parts[2], &seq); err != nil || seq == 0 || seq > math.MaxInt64 || fmt.Sprint(seq) != parts[2] {
		return "", "", 0, errors.New("an entry id ends in its sequence number, 1 or more")
	}
	return parts[0], parts[1], seq, nil
}

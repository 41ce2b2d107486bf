package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// SaleRequest is a sale from the POS. Till empty: Options.Till. At zero: now.
type SaleRequest struct {
	Till, ReceiptID, MemberID, Cashier, CouponID string
	// Approver is the supervisor who approved the request ("" none).
	// Left out of the request hash when empty, so resends of requests
	// made before it existed still match.
	Approver     string `json:",omitempty"`
	Lines        []loyalty.Line
	RedeemPoints int64
	// StoredValue is the part of the amount due paid from stored value.
	StoredValue int64
	At          time.Time
	// Offline: the till cannot reach HQ; redemption is capped per day.
	Offline bool
}

// RefundItem names a quantity of one sale line to refund.
type RefundItem struct {
	LineNo int
	Qty    int64
}

// RefundRequest refunds lines of a sale, or all of what remains (Full).
type RefundRequest struct {
	Till, RefundID, ReceiptID, Cashier string
	// Approver is the supervisor who approved the request ("" none).
	// Left out of the request hash when empty, so resends of requests
	// made before it existed still match.
	Approver string `json:",omitempty"`
	// SaleTill is the till of the original sale; empty: Till.
	SaleTill string
	Lines    []RefundItem
	Full     bool
	At       time.Time
}

// VoidRequest cancels a whole sale of this till that has no refund yet.
type VoidRequest struct {
	Till, ReceiptID, Cashier, Reason string
	// Approver is the supervisor who approved the request ("" none).
	// Left out of the request hash when empty, so resends of requests
	// made before it existed still match.
	Approver string `json:",omitempty"`
	At       time.Time
}

// TopUpRequest buys stored value.
type TopUpRequest struct {
	Till, TopUpID, MemberID, Cashier string
	// Approver is the supervisor who approved the request ("" none).
	// Left out of the request hash when empty, so resends of requests
	// made before it existed still match.
	Approver string `json:",omitempty"`
	Amount   int64
	At       time.Time
}

// EnrolRequest enrols a member. Member.ID empty: one is generated.
// CardToken is the keyed hash of the card, never the card number.
type EnrolRequest struct {
	Till, Key, Cashier, ReferrerID string
	// Approver is the supervisor who approved the request ("" none).
	// Left out of the request hash when empty, so resends of requests
	// made before it existed still match.
	Approver  string `json:",omitempty"`
	Member    entry.Member
	CardToken string
	At        time.Time
}

// Programs returns the program versions in use.
func (l *Ledger) Programs() loyalty.Programs { return *l.progs.Load() }

// requestHash is the canonical hash of a request (its JSON), 16 bytes.
func requestHash(v any) []byte {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return h[:16]
}

func (l *Ledger) defaults(till *string, at *time.Time) error {
	if *till == "" {
		*till = l.o.Till
	}
	if *till == "" {
		return wrapErr(ErrInvalid, "no till given and no default till configured")
	}
	if err := checkID("till id", *till); err != nil {
		return err
	}
	if at.IsZero() {
		*at = l.now()
	}
	return nil
}

// checkTime bounds a time a request carries by the ledger's own clock:
// at most ClockSkew ahead (a POS clock running fast), at most MaxBackdate
// behind (a receipt queued while the agent was unreachable keeps its time).
// Dates that drive points (member day, birthdays, coupon validity, lot
// expiry, the offline day) come from this time, so it must be believable.
// Writes check it after their idempotency lookup, so resending a request
// that was committed still answers with the first result.
func (l *Ledger) checkTime(at time.Time) error {
	now := l.now()
	switch {
	case at.After(now.Add(l.o.ClockSkew)):
		return &TimeError{Kind: TimeAhead, At: at, Now: now, Limit: l.o.ClockSkew}
	case at.Before(now.Add(-l.o.MaxBackdate)):
		return &TimeError{Kind: TimeTooOld, At: at, Now: now, Limit: l.o.MaxBackdate}
	}
	return nil
}

// checkMemberTime refuses a backdated time before the member enrolled. A
// time within ClockSkew of the ledger's clock always passes: the member
// exists now, and another till's clock may have stamped the enrolment a
// little ahead of this one.
func (l *Ledger) checkMemberTime(ms *mstate, at time.Time) error {
	since, err := time.Parse(time.RFC3339, ms.member.EnrolledAt)
	if err != nil {
		return nil // HQ sent no enrolment time: nothing to compare with
	}
	now := l.now()
	if !at.Before(now.Add(-l.o.ClockSkew)) || !at.Before(since.Add(-l.o.ClockSkew)) {
		return nil
	}
	return &TimeError{Kind: TimeBeforeMember, At: at, Now: now, Limit: l.o.ClockSkew, Member: ms.id, Since: since}
}

func (l *Ledger) stamp(e *entry.Entry, till, cashier string, at time.Time, p *loyalty.Program) {
	e.Store, e.Till, e.Cashier = l.store, till, cashier
	e.At = at.UTC()
	e.Local = at.In(p.Location()).Format(time.RFC3339)
	e.ProgramVersion = p.Version
}

// record stamps e, gives it its sequence numbers and applies it to the
// member's state: the steps every follow-on entry of a commit takes.
func (l *Ledger) record(ms *mstate, a *alloc, e *entry.Entry, till, cashier string, at time.Time, p *loyalty.Program) error {
	l.stamp(e, till, cashier, at, p)
	_, err := ms.apply(e, a.add(e), l.Programs(), nil)
	return err
}

// touch writes off the member's lots expired at now (points_expired
// entries, created lazily when the member is next used). now is the
// ledger's own clock, never a time a request carried: a wrong stamp must
// not destroy valid points.
func (l *Ledger) touch(ms *mstate, till, cashier string, now time.Time, a *alloc) error {
	for _, lt := range ms.expiredLots(now) {
		p, err := l.Programs().At(now)
		if err != nil {
			return wrapErr(ErrInvalid, "%v", err)
		}
		e := &entry.Entry{Kind: entry.KindPointsExpired, MemberID: ms.id, PointsDelta: -lt.Remaining,
			Points: &entry.PointsChange{Reason: "expiry", Points: -lt.Remaining, Lot: lt.ID,
				LotsUsed: []entry.LotUse{{Lot: lt.ID, Points: lt.Remaining}}}}
		l.stamp(e, till, cashier, now, p)
		g := uint64(0)
		if a != nil {
			g = a.add(e)
		}
		if _, err := ms.apply(e, g, l.Programs(), nil); err != nil {
			return err
		}
	}
	return nil
}

type salePlan struct {
	prog  *loyalty.Program
	ms    *mstate
	quote loyalty.Quote
}

// priceSale checks and prices r against the member's current state. With a
// non-nil alloc the expiry entries it implies are allocated too.
func (l *Ledger) priceSale(tx *bolt.Tx, r SaleRequest, a *alloc) (*salePlan, error) {
	p, err := l.Programs().At(r.At)
	if err != nil {
		return nil, wrapErr(ErrInvalid, "%v", err)
	}
	sp := &salePlan{prog: p}
	b := loyalty.Basket{Lines: r.Lines, RedeemPoints: r.RedeemPoints}
	var lm *loyalty.Member
	if r.RedeemPoints < 0 || r.StoredValue < 0 {
		return nil, wrapErr(ErrInvalid, "points to redeem and stored value to pay must not be negative")
	}
	if r.MemberID == "" {
		if r.CouponID != "" || r.RedeemPoints != 0 || r.StoredValue != 0 {
			return nil, wrapErr(ErrInvalid, "coupons, points and stored value need a member; identify the member first")
		}
	} else {
		ms, err := loadMember(tx, r.MemberID)
		if err != nil {
			return nil, err
		}
		if err := l.checkMemberTime(ms, r.At); err != nil {
			return nil, err
		}
		if err := l.touch(ms, r.Till, r.Cashier, l.now(), a); err != nil {
			return nil, err
		}
		sp.ms = ms
		avail := pos(ms.bal.Points)
		if r.RedeemPoints > avail {
			return nil, wrapErr(ErrInsufficientPoints, "member %s has %d points available, %d asked; redeem at most %d", ms.id, avail, r.RedeemPoints, avail/100*100)
		}
		if r.StoredValue > ms.bal.StoredValue {
			return nil, wrapErr(ErrInsufficientStoredValue, "member %s has %d fen of stored value, %d asked; take the rest in another payment", ms.id, ms.bal.StoredValue, r.StoredValue)
		}
		if r.CouponID != "" {
			cs := ms.coupon(r.CouponID)
			if ms.err != nil {
				return nil, ms.err
			}
			if cs == nil {
				return nil, wrapErr(ErrCouponNotFound, "member %s holds no coupon %q", ms.id, r.CouponID)
			}
			if cs.Used {
				return nil, wrapErr(ErrCouponUsed, "coupon %s was already used (till %s #%d); take it off the sale", r.CouponID, cs.UsedTill, cs.UsedSeq)
			}
			c, err := toLoyaltyCoupon(cs.Coupon)
			if err != nil {
				return nil, err
			}
			b.Coupon = &c
		}
		lm = &loyalty.Member{ID: ms.id, Tier: ms.member.Tier, Birthday: ms.member.Birthday, Points: avail}
	}
	q, err := p.Quote(b, lm, r.At)
	if err != nil {
		return nil, wrapErr(ErrInvalid, "%v", err)
	}
	if r.StoredValue > q.Due {
		return nil, wrapErr(ErrInvalid, "stored value %d fen is more than the %d fen due", r.StoredValue, q.Due)
	}
	if r.Offline && q.RedeemPoints > 0 {
		if err := offlineCap(p, sp.ms, r.At, q.RedeemPoints); err != nil {
			return nil, err
		}
	}
	sp.quote = q
	return sp, nil
}

// offlineCap checks the points a sale would really redeem (after the 50 %
// limit) against the program's daily offline cap. The count belongs to the
// latest local day the member redeemed offline; a receipt stamped on an
// earlier day counts against it too, so a backdated sale cannot open a
// fresh day's allowance.
func offlineCap(p *loyalty.Program, ms *mstate, at time.Time, redeem int64) error {
	cap := p.OfflineRedeemCapPerDay()
	used := int64(0)
	if dayNum(at.In(p.Location())) <= ms.bal.OffDay {
		used = ms.bal.OffRedeemed
	}
	if used+redeem <= cap {
		return nil
	}
	left := max(cap-used, 0)
	if step := p.Redemption.Step; step > 0 {
		left = left / step * step
	}
	return &OfflineCapError{Member: ms.id, Cap: cap, Used: used, Left: left}
}

func toLoyaltyCoupon(c entry.MemberCoupon) (loyalty.Coupon, error) {
	out := loyalty.Coupon{ID: c.ID, Name: c.Name, Threshold: c.Threshold, Value: c.Value, SKUs: c.SKUs}
	var err error
	if c.ValidFrom != "" {
		if out.ValidFrom, err = time.Parse(time.RFC3339, c.ValidFrom); err != nil {
			return out, wrapErr(ErrInvalid, "coupon %s: valid_from %q is not RFC 3339", c.ID, c.ValidFrom)
		}
	}
	if c.ValidUntil != "" {
		if out.ValidUntil, err = time.Parse(time.RFC3339, c.ValidUntil); err != nil {
			return out, wrapErr(ErrInvalid, "coupon %s: valid_until %q is not RFC 3339", c.ID, c.ValidUntil)
		}
	}
	return out, nil
}

func fromLoyaltyCoupon(c loyalty.Coupon, member string) entry.MemberCoupon {
	mc := entry.MemberCoupon{ID: c.ID, MemberID: member, Name: c.Name, Threshold: c.Threshold, Value: c.Value, SKUs: c.SKUs}
	if !c.ValidFrom.IsZero() {
		mc.ValidFrom = c.ValidFrom.UTC().Format(time.RFC3339)
	}
	if !c.ValidUntil.IsZero() {
		mc.ValidUntil = c.ValidUntil.UTC().Format(time.RFC3339)
	}
	return mc
}

// usedCoupon is the coupon a sale uses up: the one offered, unless the quote
// did not apply it (it took nothing off), so the member keeps it.
func usedCoupon(id string, q loyalty.Quote) string {
	if q.CouponValue <= 0 {
		return ""
	}
	return id
}

// couponValid tells whether a coupon can still be used at t.
func couponValid(c entry.MemberCoupon, t time.Time) bool {
	lc, err := toLoyaltyCoupon(c)
	if err != nil {
		return false
	}
	return (lc.ValidFrom.IsZero() || !t.Before(lc.ValidFrom)) && (lc.ValidUntil.IsZero() || t.Before(lc.ValidUntil))
}

// Quote prices a sale as CommitSale would, without writing anything.
func (l *Ledger) Quote(ctx context.Context, r SaleRequest) (loyalty.Quote, error) {
	if err := l.defaults(&r.Till, &r.At); err != nil {
		return loyalty.Quote{}, err
	}
	if err := l.checkTime(r.At); err != nil {
		return loyalty.Quote{}, err
	}
	var q loyalty.Quote
	err := l.read(func(tx *bolt.Tx) error {
		sp, err := l.priceSale(tx, r, nil)
		if err != nil {
			return err
		}
		q = sp.quote
		return nil
	})
	return q, err
}

func saleHash(r SaleRequest) []byte {
	r.At, r.Offline = time.Time{}, false // a resend may be restamped or sent once back online
	return requestHash(r)
}

// CommitSale prices and commits a sale. It is idempotent by (store, till,
// receipt id): the same request again returns the first entry and writes
// nothing; other content under the same receipt id is ErrKeyConflict.
// A tier upgrade the sale earns is committed with it (tier_change and bonus
// entries after the sale, which is priced at the old tier).
func (l *Ledger) CommitSale(ctx context.Context, r SaleRequest) (*entry.Entry, error) {
	if err := l.defaults(&r.Till, &r.At); err != nil {
		return nil, err
	}
	if r.ReceiptID == "" {
		return nil, wrapErr(ErrInvalid, "receipt id is required (it makes the sale idempotent)")
	}
	h := saleHash(r)
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		if prev, err := lookupKey(tx, "sale", r.Till, r.ReceiptID, h); err != nil || prev != nil {
			return first(prev), err
		}
		if err := l.checkTime(r.At); err != nil {
			return nil, err
		}
		a := newAlloc(tx)
		sp, err := l.priceSale(tx, r, a)
		if err != nil {
			return nil, err
		}
		q := sp.quote
		e := &entry.Entry{Kind: entry.KindSale, Key: r.ReceiptID, MemberID: r.MemberID}
		l.stamp(e, r.Till, r.Cashier, r.At, sp.prog)
		e.Approver = r.Approver
		s := &entry.Sale{ReceiptID: r.ReceiptID, Tier: q.Tier, Gross: q.Gross, Discount: q.Discount,
			CouponID: usedCoupon(r.CouponID, q), CouponValue: q.CouponValue, RedeemPoints: q.RedeemPoints, RedeemValue: q.RedeemValue,
			Due: q.Due, StoredValue: r.StoredValue, EarnBase: q.EarnBase, Multiplier: q.Multiplier,
			PointsEarned: q.PointsEarned, Reasons: q.Reasons, OfflineRedeem: r.Offline && q.RedeemPoints > 0}
		for _, ql := range q.Lines {
			s.Lines = append(s.Lines, entry.SaleLine{LineNo: ql.LineNo, SKU: ql.SKU, Qty: ql.Qty, UnitPrice: ql.UnitPrice,
				Discountable: ql.Discountable, EarnsPoints: ql.EarnsPoints, Gross: ql.Gross, Discount: ql.Discount,
				Net: ql.Net, CouponShare: ql.CouponShare, RedeemShare: ql.RedeemShare, RedeemPoints: ql.RedeemPoints,
				Paid: ql.Paid, EarnedPoints: ql.EarnedPoints})
		}
		e.Sale = s
		first := len(a.out)
		g0 := a.add(e)
		if ms := sp.ms; ms != nil {
			e.PointsDelta = q.PointsEarned - q.RedeemPoints
			e.StoredValueDelta = -r.StoredValue
			if q.PointsEarned > 0 {
				s.LotExpiresAt = sp.prog.LotExpiry(r.At).In(sp.prog.Location()).AddDate(0, 0, -1).Format(time.DateOnly)
			}
			uses, err := ms.apply(e, g0, l.Programs(), nil)
			if err != nil {
				return nil, err
			}
			s.LotsUsed = uses
			from := ms.member.Tier
			if from == "" {
				from = sp.prog.EnrolTier
			}
			to, bonus, why := sp.prog.TierAfterSale(from, ms.tierStats(r.At.In(sp.prog.Location())))
			if to != from {
				tc := &entry.Entry{Kind: entry.KindTierChange, Key: r.ReceiptID, MemberID: ms.id,
					Tier: &entry.TierChange{From: from, To: to, Reason: why}}
				if err := l.record(ms, a, tc, r.Till, r.Cashier, r.At, sp.prog); err != nil {
					return nil, err
				}
				if bonus > 0 {
					be := &entry.Entry{Kind: entry.KindPointsAdjust, Key: r.ReceiptID, MemberID: ms.id, PointsDelta: bonus,
						Points: &entry.PointsChange{Reason: "tier_upgrade", Points: bonus}}
					if err := l.record(ms, a, be, r.Till, r.Cashier, r.At, sp.prog); err != nil {
						return nil, err
					}
				}
			}
			if err := ms.save(w); err != nil {
				return nil, err
			}
		}
		if err := a.flush(w); err != nil {
			return nil, err
		}
		if err := putKey(w, "sale", r.Till, r.ReceiptID, h, a.seqsOf(first)); err != nil {
			return nil, err
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*entry.Entry), nil
}

func first(es []*entry.Entry) any {
	if len(es) == 0 {
		return nil
	}
	return es[0]
}

// saleState is what refunds and a void have taken from a sale so far.
type saleState struct {
	Lines      map[int]*lineRefunded `json:"lines,omitempty"`
	SVReturned int64                 `json:"sv,omitempty"`
	Refunds    int                   `json:"refunds,omitempty"`
	Voided     bool                  `json:"voided,omitempty"`
	Done       bool                  `json:"done,omitempty"` // nothing left to refund
}

type lineRefunded struct {
	Qty, Paid, Redeem, Earned int64
}

// findSale returns the sale committed on till under receipt.
func findSale(tx *bolt.Tx, till, receipt string) (*saleRef, *saleState, error) {
	var kr keyRec
	raw := tx.Bucket(bKeys).Get(idemKey("sale", till, receipt))
	if raw != nil {
		var err error
		if kr, err = decodeKeyRec(raw); err != nil {
			return nil, nil, err
		}
	}
	if len(kr.Seqs) == 0 {
		return nil, nil, wrapErr(ErrNotFound, "no sale with receipt %q on till %s; check the receipt and the till it was sold on", receipt, till)
	}
	e, g, err := entryAt(tx, till, kr.Seqs[0])
	if err != nil {
		return nil, nil, err
	}
	ss := &saleState{Lines: map[int]*lineRefunded{}}
	if _, err := getJSON(tx.Bucket(bSales), tillKey(till, e.Seq), ss); err != nil {
		return nil, nil, err
	}
	if ss.Lines == nil {
		ss.Lines = map[int]*lineRefunded{}
	}
	return &saleRef{global: g, e: e}, ss, nil
}

func refundHash(r RefundRequest) []byte {
	r.At = time.Time{}
	items := append([]RefundItem(nil), r.Lines...)
	sort.Slice(items, func(i, j int) bool { return items[i].LineNo < items[j].LineNo })
	r.Lines = items
	return requestHash(r)
}

// Refund gives back lines of a sale (by line and quantity) or all that
// remains (Full). Earned points on those lines are taken back, redeemed
// points given back (as a new lot expiring as if earned on the sale's day),
// money goes back to stored value up to what the sale paid from it, and the
// coupon comes back once the whole sale is refunded if still valid. A points
// balance driven below zero is recorded (Refund.NegativeAfter). Idempotent by
// (till, refund id).
func (l *Ledger) Refund(ctx context.Context, r RefundRequest) (*entry.Entry, error) {
	if err := l.defaults(&r.Till, &r.At); err != nil {
		return nil, err
	}
	if r.SaleTill == "" {
		r.SaleTill = r.Till
	}
	if r.RefundID == "" || r.ReceiptID == "" {
		return nil, wrapErr(ErrInvalid, "refund id and the receipt id of the sale are required")
	}
	if !r.Full && len(r.Lines) == 0 {
		return nil, wrapErr(ErrInvalid, "name the lines and quantities to refund, or ask for a full refund")
	}
	h := refundHash(r)
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		if prev, err := lookupKey(tx, "refund", r.Till, r.RefundID, h); err != nil || prev != nil {
			return first(prev), err
		}
		if err := l.checkTime(r.At); err != nil {
			return nil, err
		}
		sr, ss, err := findSale(tx, r.SaleTill, r.ReceiptID)
		if err != nil {
			return nil, err
		}
		if ss.Voided {
			return nil, wrapErr(ErrInvalid, "sale %q was voided; there is nothing to refund", r.ReceiptID)
		}
		if ss.Done {
			return nil, wrapErr(ErrInvalid, "sale %q is already fully refunded", r.ReceiptID)
		}
		sale := sr.e.Sale
		want := map[int]int64{}
		if r.Full {
			for _, sl := range sale.Lines {
				rest := sl.Qty
				if lr := ss.Lines[sl.LineNo]; lr != nil {
					rest -= lr.Qty
				}
				if rest > 0 {
					want[sl.LineNo] = rest
				}
			}
		} else {
			for _, it := range r.Lines {
				if _, dup := want[it.LineNo]; dup {
					return nil, wrapErr(ErrInvalid, "line %d is named twice; name each line once with its total quantity", it.LineNo)
				}
				want[it.LineNo] = it.Qty
			}
		}
		a := newAlloc(tx)
		p, err := l.Programs().At(r.At)
		if err != nil {
			return nil, wrapErr(ErrInvalid, "%v", err)
		}
		e := &entry.Entry{Kind: entry.KindRefund, Key: r.RefundID, MemberID: sr.e.MemberID}
		l.stamp(e, r.Till, r.Cashier, r.At, p)
		e.Approver = r.Approver
		rf := &entry.Refund{RefundID: r.RefundID, SaleKey: r.ReceiptID, SaleEntry: sr.e.ID()}
		found := 0
		for _, sl := range sale.Lines {
			qty, ok := want[sl.LineNo]
			if !ok {
				continue
			}
			found++
			lr := ss.Lines[sl.LineNo]
			if lr == nil {
				lr = &lineRefunded{}
				ss.Lines[sl.LineNo] = lr
			}
			if qty > sl.Qty-lr.Qty {
				return nil, wrapErr(ErrInvalid, "line %d: %d to refund but only %d of %d left to refund", sl.LineNo, qty, sl.Qty-lr.Qty, sl.Qty)
			}
			part, err := loyalty.RefundLine(loyalty.RefundableLine{LineNo: sl.LineNo, Qty: sl.Qty, Paid: sl.Paid,
				RedeemPoints: sl.RedeemPoints, EarnedPoints: sl.EarnedPoints, RefundedQty: lr.Qty, RefundedPaid: lr.Paid,
				RefundedRedeem: lr.Redeem, RefundedEarned: lr.Earned}, qty)
			if err != nil {
				return nil, wrapErr(ErrInvalid, "%v", err)
			}
			lr.Qty += part.Qty
			lr.Paid += part.Amount
			lr.Redeem += part.PointsRestored
			lr.Earned += part.PointsReversed
			rf.Lines = append(rf.Lines, entry.RefundLine{LineNo: part.LineNo, Qty: part.Qty, Amount: part.Amount,
				PointsReversed: part.PointsReversed, PointsRestored: part.PointsRestored})
			rf.Amount += part.Amount
			rf.PointsReversed += part.PointsReversed
			rf.PointsRestored += part.PointsRestored
		}
		if found != len(want) {
			return nil, wrapErr(ErrInvalid, "sale %q has no line among %v; check the line numbers on the receipt", r.ReceiptID, keysOf(want))
		}
		ss.Done = true
		for _, sl := range sale.Lines {
			if lr := ss.Lines[sl.LineNo]; lr == nil || lr.Qty < sl.Qty {
				ss.Done = false
			}
		}
		rf.Full = ss.Done && ss.Refunds == 0
		ss.Refunds++
		rf.StoredValue = min(rf.Amount, sale.StoredValue-ss.SVReturned)
		ss.SVReturned += rf.StoredValue
		var ms *mstate // nil for a non-member sale
		if sr.e.MemberID != "" {
			if ms, err = loadMember(tx, sr.e.MemberID); err != nil {
				return nil, err
			}
			if err := l.touch(ms, r.Till, r.Cashier, l.now(), a); err != nil {
				return nil, err
			}
			if ss.Done {
				rf.CouponRestored = restorableCoupon(ms, sr, r.At)
			}
			e.PointsDelta = rf.PointsRestored - rf.PointsReversed
			e.StoredValueDelta = rf.StoredValue
			rf.NegativeAfter = ms.bal.Points+e.PointsDelta < 0
		} else {
			rf.StoredValue = 0
		}
		e.Refund = rf
		if err := l.writeReversal(w, a, ms, e, sr, ss, "refund", r.Till, r.RefundID, h); err != nil {
			return nil, err
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*entry.Entry), nil
}

// restorableCoupon is the sale's coupon when reversing the sale gives it
// back: the member still holds it as used by this very sale and it is still
// valid at t. "" otherwise.
func restorableCoupon(ms *mstate, sr *saleRef, t time.Time) string {
	id := sr.e.Sale.CouponID
	if id == "" {
		return ""
	}
	if c := ms.coupon(id); c != nil && c.Used && c.UsedTill == sr.e.Till && c.UsedSeq == sr.e.Seq && couponValid(c.Coupon, t) {
		return id
	}
	return ""
}

// writeReversal records a refund or void e of sale sr: applied to the
// member (ms nil for a non-member sale), sequenced, the sale's refund state
// ss saved and the idempotency key stored — the same steps for both.
func (l *Ledger) writeReversal(w *writer, a *alloc, ms *mstate, e *entry.Entry, sr *saleRef, ss *saleState, kind, till, key string, h []byte) error {
	if ms != nil {
		if _, err := ms.apply(e, a.add(e), l.Programs(), sr); err != nil {
			return err
		}
		if err := ms.save(w); err != nil {
			return err
		}
	} else {
		a.add(e)
	}
	if err := a.flush(w); err != nil {
		return err
	}
	if err := w.putJSON(bSales, tillKey(sr.e.Till, sr.e.Seq), ss); err != nil {
		return err
	}
	return putKey(w, kind, till, key, h, []uint64{e.Seq})
}

func keysOf(m map[int]int64) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// Void reverses a whole sale of this till that has not been refunded:
// earned points back, redeemed points and stored value given back, the
// coupon restored when still valid. Idempotent by (till, receipt id).
func (l *Ledger) Void(ctx context.Context, r VoidRequest) (*entry.Entry, error) {
	if err := l.defaults(&r.Till, &r.At); err != nil {
		return nil, err
	}
	if r.ReceiptID == "" {
		return nil, wrapErr(ErrInvalid, "receipt id of the sale to void is required")
	}
	hr := r
	hr.At = time.Time{}
	h := requestHash(hr)
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		if prev, err := lookupKey(tx, "void", r.Till, r.ReceiptID, h); err != nil || prev != nil {
			return first(prev), err
		}
		if err := l.checkTime(r.At); err != nil {
			return nil, err
		}
		sr, ss, err := findSale(tx, r.Till, r.ReceiptID)
		if err != nil {
			return nil, err
		}
		if ss.Refunds > 0 {
			return nil, wrapErr(ErrInvalid, "sale %q already has a refund; refund the rest instead of voiding", r.ReceiptID)
		}
		sale := sr.e.Sale
		p, err := l.Programs().At(r.At)
		if err != nil {
			return nil, wrapErr(ErrInvalid, "%v", err)
		}
		a := newAlloc(tx)
		e := &entry.Entry{Kind: entry.KindVoid, Key: r.ReceiptID, MemberID: sr.e.MemberID}
		l.stamp(e, r.Till, r.Cashier, r.At, p)
		e.Approver = r.Approver
		v := &entry.Void{SaleKey: r.ReceiptID, SaleEntry: sr.e.ID(), Reason: r.Reason}
		e.Void = v
		var ms *mstate // nil for a non-member sale
		if sr.e.MemberID != "" {
			if ms, err = loadMember(tx, sr.e.MemberID); err != nil {
				return nil, err
			}
			if err := l.touch(ms, r.Till, r.Cashier, l.now(), a); err != nil {
				return nil, err
			}
			v.PointsReversed, v.PointsRestored, v.StoredValue = sale.PointsEarned, sale.RedeemPoints, sale.StoredValue
			v.CouponRestored = restorableCoupon(ms, sr, r.At)
			e.PointsDelta = v.PointsRestored - v.PointsReversed
			e.StoredValueDelta = v.StoredValue
		}
		ss.Voided, ss.Done = true, true
		if err := l.writeReversal(w, a, ms, e, sr, ss, "void", r.Till, r.ReceiptID, h); err != nil {
			return nil, err
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*entry.Entry), nil
}

// TopUp adds stored value with the program's bonus. Idempotent by (till,
// top-up id).
func (l *Ledger) TopUp(ctx context.Context, r TopUpRequest) (*entry.Entry, error) {
	if err := l.defaults(&r.Till, &r.At); err != nil {
		return nil, err
	}
	if r.TopUpID == "" || r.MemberID == "" {
		return nil, wrapErr(ErrInvalid, "top-up id and member id are required")
	}
	if r.Amount <= 0 {
		return nil, wrapErr(ErrInvalid, "top-up amount %d fen must be positive", r.Amount)
	}
	hr := r
	hr.At = time.Time{}
	h := requestHash(hr)
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		if prev, err := lookupKey(tx, "topup", r.Till, r.TopUpID, h); err != nil || prev != nil {
			return first(prev), err
		}
		if err := l.checkTime(r.At); err != nil {
			return nil, err
		}
		ms, err := loadMember(tx, r.MemberID)
		if err != nil {
			return nil, err
		}
		p, err := l.Programs().At(r.At)
		if err != nil {
			return nil, wrapErr(ErrInvalid, "%v", err)
		}
		if err := l.checkMemberTime(ms, r.At); err != nil {
			return nil, err
		}
		a := newAlloc(tx)
		if err := l.touch(ms, r.Till, r.Cashier, l.now(), a); err != nil {
			return nil, err
		}
		bonus := p.TopUpBonus(r.Amount)
		e := &entry.Entry{Kind: entry.KindTopUp, Key: r.TopUpID, MemberID: ms.id, StoredValueDelta: r.Amount + bonus,
			TopUp: &entry.TopUp{TopUpID: r.TopUpID, Amount: r.Amount, Bonus: bonus}, Approver: r.Approver}
		if err := l.record(ms, a, e, r.Till, r.Cashier, r.At, p); err != nil {
			return nil, err
		}
		if err := ms.save(w); err != nil {
			return nil, err
		}
		if err := a.flush(w); err != nil {
			return nil, err
		}
		if err := putKey(w, "topup", r.Till, r.TopUpID, h, []uint64{e.Seq}); err != nil {
			return nil, err
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*entry.Entry), nil
}

// Enrol creates a member with the welcome coupon; with a referrer, the
// referrer gets points and the new member points and a coupon. Idempotent by
// (till, key). Returns the entries in order, the enrol entry first.
func (l *Ledger) Enrol(ctx context.Context, r EnrolRequest) ([]*entry.Entry, error) {
	if err := l.defaults(&r.Till, &r.At); err != nil {
		return nil, err
	}
	if r.Key == "" {
		return nil, wrapErr(ErrInvalid, "enrolment key is required (it makes the enrolment idempotent)")
	}
	hr := r
	hr.At = time.Time{}
	h := requestHash(hr)
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		if prev, err := lookupKey(tx, "enrol", r.Till, r.Key, h); err != nil || prev != nil {
			if err != nil {
				return nil, err
			}
			return prev, nil
		}
		if err := l.checkTime(r.At); err != nil {
			return nil, err
		}
		p, err := l.Programs().At(r.At)
		if err != nil {
			return nil, wrapErr(ErrInvalid, "%v", err)
		}
		a := newAlloc(tx)
		m := r.Member
		enrol := &entry.Entry{Kind: entry.KindEnrol, Key: r.Key}
		l.stamp(enrol, r.Till, r.Cashier, r.At, p)
		enrol.Approver = r.Approver
		g := a.add(enrol)
		if m.ID == "" {
			m.ID = fmt.Sprintf("%s-%s-%d", l.store, r.Till, enrol.Seq)
		}
		if err := checkID("member id", m.ID); err != nil {
			return nil, err
		}
		if tx.Bucket(bMembers).Get(memberKey(m.ID, tagMember)) != nil {
			return nil, wrapErr(ErrKeyConflict, "member %s already exists; look the member up instead of enrolling again", m.ID)
		}
		if m.Tier == "" {
			m.Tier = p.EnrolTier
		}
		if _, ok := p.Tier(m.Tier); !ok {
			return nil, wrapErr(ErrInvalid, "tier %q is not in program v%d", m.Tier, p.Version)
		}
		if m.Mobile != "" {
			if other := mobileOwner(tx, m.Mobile); other != nil {
				return nil, wrapErr(ErrKeyConflict, "mobile %s already belongs to member %s; find them by mobile instead", loyalty.MaskMobile(m.Mobile), other)
			}
		}
		if r.CardToken != "" {
			if other := tokenOwner(tx, r.CardToken); other != nil {
				return nil, wrapErr(ErrKeyConflict, "this card already belongs to member %s", other)
			}
			m.CardTokens = appendUnique(m.CardTokens, r.CardToken)
		}
		m.ReferrerID = r.ReferrerID
		m.EnrolledAt = r.At.UTC().Format(time.RFC3339)
		enrol.MemberID = m.ID
		enrol.Enrol = &entry.Enrol{Member: m, ReferrerID: r.ReferrerID}
		ms := newMState(m.ID)
		if _, err := ms.apply(enrol, g, l.Programs(), nil); err != nil {
			return nil, err
		}
		out := []*entry.Entry{enrol}
		add := func(e *entry.Entry, target *mstate) error {
			out = append(out, e)
			return l.record(target, a, e, r.Till, r.Cashier, r.At, p)
		}
		wc := p.WelcomeCoupon(m.ID, r.At)
		if err := add(&entry.Entry{Kind: entry.KindCouponIssued, Key: r.Key, MemberID: m.ID,
			Coupon: &entry.CouponIssued{Coupon: fromLoyaltyCoupon(wc, m.ID), Reason: "welcome"}}, ms); err != nil {
			return nil, err
		}
		var ref *mstate
		if r.ReferrerID != "" {
			if ref, err = loadMember(tx, r.ReferrerID); err != nil {
				return nil, err
			}
			if err := l.touch(ref, r.Till, r.Cashier, l.now(), a); err != nil {
				return nil, err
			}
			rp, np, _ := p.ReferralBonus()
			if rp > 0 {
				if err := add(&entry.Entry{Kind: entry.KindPointsAdjust, Key: r.Key, MemberID: ref.id, PointsDelta: rp,
					Points: &entry.PointsChange{Reason: "referral", Points: rp}}, ref); err != nil {
					return nil, err
				}
			}
			if np > 0 {
				if err := add(&entry.Entry{Kind: entry.KindPointsAdjust, Key: r.Key, MemberID: m.ID, PointsDelta: np,
					Points: &entry.PointsChange{Reason: "referred", Points: np}}, ms); err != nil {
					return nil, err
				}
			}
			rc := p.ReferralCoupon(m.ID, r.At)
			if rc.Value > 0 {
				if err := add(&entry.Entry{Kind: entry.KindCouponIssued, Key: r.Key, MemberID: m.ID,
					Coupon: &entry.CouponIssued{Coupon: fromLoyaltyCoupon(rc, m.ID), Reason: "referral"}}, ms); err != nil {
					return nil, err
				}
			}
		}
		// Writes start here.
		if err := ms.save(w); err != nil {
			return nil, err
		}
		if ref != nil {
			if err := ref.save(w); err != nil {
				return nil, err
			}
		}
		if err := indexMember(w, nil, &m); err != nil {
			return nil, err
		}
		if err := a.flush(w); err != nil {
			return nil, err
		}
		seqs := make([]uint64, len(out))
		for i, e := range out {
			seqs[i] = e.Seq
		}
		if err := putKey(w, "enrol", r.Till, r.Key, h, seqs); err != nil {
			return nil, err
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return res.([]*entry.Entry), nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// ExpireLots writes off every lot expired at now (points_expired entries on
// the default till). Members are also expired lazily when next used; this is
// for a nightly sweep. A now later than the ledger's clock is cut to it:
// write-offs never run ahead of the ledger's own clock. Returns how many
// lots were written off.
func (l *Ledger) ExpireLots(ctx context.Context, now time.Time) (int, error) {
	if c := l.now(); now.After(c) {
		now = c
	}
	till := l.o.Till
	if till == "" {
		return 0, wrapErr(ErrInvalid, "no default till configured for expiry entries")
	}
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		// The lot-expiry index holds only members with a lot that can
		// expire at the till, by expiry: the sweep reads those due, never
		// the whole members bucket.
		ids := map[string]bool{}
		c := tx.Bucket(bLotExp).Cursor()
		for k, _ := c.First(); k != nil && len(k) > 8 && int64(getU64(k[:8])) <= now.Unix(); k, _ = c.Next() {
			ids[string(k[8:])] = true
		}
		a := newAlloc(tx)
		var mss []*mstate
		for id := range ids {
			ms, err := loadMember(tx, id)
			if err != nil {
				return nil, err
			}
			if err := l.touch(ms, till, "", now, a); err != nil {
				return nil, err
			}
			mss = append(mss, ms)
		}
		for _, ms := range mss {
			if err := ms.save(w); err != nil {
				return nil, err
			}
		}
		if len(a.out) == 0 {
			return 0, nil
		}
		return len(a.out), a.flush(w)
	})
	if err != nil {
		return 0, err
	}
	return res.(int), nil
}

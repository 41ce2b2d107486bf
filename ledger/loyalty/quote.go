package loyalty

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Quote prices basket b for member m (nil: a non-member, who gets no tier
// discount, earns no points and cannot redeem) at instant at, which is
// converted to the program's time zone for every date rule.
//
// Steps, per the program: gross per line; tier discount per discountable
// line rounded half up at the fen; one threshold coupon spread over the lines
// it covers by net; points redemption in whole steps capped at a share of the
// amount due after the coupon, spread by what is left due per line; earn base
// per earning line; points = floor(earn base / fen per point) × the highest
// multiplier; points spread over earning lines by earn base. Every spread uses
// the largest-remainder method (ties to the earlier line) so parts sum exactly.
//
// The figures are computed first, then the quote's reasons are written into
// a reused buffer and copied once into the string they are cut from. The
// lines' reasons are not written here: each line holds what they are written
// from (LineReasons), so a quote allocates four times whatever its size and
// returns little more than its figures. The ledger keeps the quote's reasons
// as text; the lines' are written when the quote is encoded or read.
func (p *Program) Quote(b Basket, m *Member, at time.Time) (Quote, error) {
	if p == nil {
		return Quote{}, errors.New("loyalty: no program to price with")
	}
	if at.IsZero() {
		return Quote{}, errors.New("loyalty: the sale time is missing; pass the time the sale is made")
	}
	n := len(b.Lines)
	if n == 0 {
		return Quote{}, errors.New("loyalty: the basket has no lines; add at least one")
	}
	if n > MaxLines {
		return Quote{}, fmt.Errorf("loyalty: the basket has %d lines, more than the %d allowed; split the sale", n, MaxLines)
	}
	local := at.In(p.Location())
	q := Quote{ProgramVersion: p.Version, Lines: make([]QuoteLine, n), Multiplier: 0}

	var tier Tier
	member := m != nil
	if member {
		id := m.Tier
		if id == "" {
			id = p.EnrolTier
		}
		t, ok := p.Tier(id)
		if !ok {
			return Quote{}, fmt.Errorf("loyalty: member %s has tier %q, which program v%d does not define; sync the member or the program from HQ", m.ID, id, p.Version)
		}
		tier, q.Tier = t, id
	}
	sc := getScratch(n)
	defer putScratch(sc)

	// 1. Gross, tier discount, net.
	dup := firstDuplicate(b.Lines, sc.idx)
	for i, l := range b.Lines {
		if i == dup {
			return Quote{}, fmt.Errorf("loyalty: line number %d appears twice; number every line once", l.LineNo)
		}
		switch {
		case l.LineNo < 0:
			return Quote{}, fmt.Errorf("loyalty: line number %d is negative", l.LineNo)
		case l.Qty <= 0:
			return Quote{}, fmt.Errorf("loyalty: line %d (%s): quantity %d must be 1 or more; sell returns as refunds", l.LineNo, l.SKU, l.Qty)
		case l.Qty > MaxQty:
			return Quote{}, fmt.Errorf("loyalty: line %d (%s): quantity %d is more than %d", l.LineNo, l.SKU, l.Qty, MaxQty)
		case l.UnitPrice < 0:
			return Quote{}, fmt.Errorf("loyalty: line %d (%s): unit price %d fen is negative; give discounts as coupons", l.LineNo, l.SKU, l.UnitPrice)
		}
		hi, gross := bits.Mul64(uint64(l.Qty), uint64(l.UnitPrice))
		if hi != 0 || gross > uint64(MaxAmount) {
			return Quote{}, fmt.Errorf("loyalty: line %d (%s): %d × %d fen is more than the %d fen a line may come to", l.LineNo, l.SKU, l.Qty, l.UnitPrice, MaxAmount)
		}
		ql := &q.Lines[i]
		ql.Line = l
		ql.Gross = int64(gross)
		if member && l.Discountable && tier.DiscountBP != 0 {
			ql.Discount = roundHalfUpBP(ql.Gross, tier.DiscountBP)
		}
		ql.Net = ql.Gross - ql.Discount
		q.Gross += ql.Gross
		q.Discount += ql.Discount
		if q.Gross > MaxAmount {
			return Quote{}, fmt.Errorf("loyalty: the basket comes to more than %d fen; split the sale", MaxAmount)
		}
	}
	q.Net = q.Gross - q.Discount

	qt := &sc.qt
	qt.s("gross ")
	qt.yuan(q.Gross)
	qt.s(", tier discount ")
	qt.yuan(q.Discount)
	qt.s(", net ")
	qt.yuan(q.Net)
	qt.end()
	if member {
		qt.s("member ")
		qt.s(m.ID)
		qt.s(", tier ")
		qt.s(tier.ID)
		qt.s(" (")
		qt.bp(tier.DiscountBP)
		qt.s(" off discountable lines), program v")
		qt.int(int64(p.Version))
	} else {
		qt.s("non-member: no tier discount, no points, no redemption (program v")
		qt.int(int64(p.Version))
		qt.s(")")
	}
	qt.end()

	// 2. One threshold coupon on the lines it covers.
	couponOn := false
	if c := b.Coupon; c != nil {
		var err error
		if couponOn, err = p.applyCoupon(&q, c, local, sc, qt); err != nil {
			return Quote{}, err
		}
	}

	// 3–4. Points redemption.
	due := q.Net - q.CouponValue
	if b.RedeemPoints != 0 {
		if err := p.applyRedeem(&q, b.RedeemPoints, m, due, sc, qt); err != nil {
			return Quote{}, err
		}
	}
	for i := range q.Lines {
		ql := &q.Lines[i]
		ql.Paid = ql.Net - ql.CouponShare - ql.RedeemShare
	}
	q.Due = due - q.RedeemValue
	qt.s("due ")
	qt.yuan(q.Due)
	qt.s(" = net ")
	qt.yuan(q.Net)
	qt.s(" − coupon ")
	qt.yuan(q.CouponValue)
	qt.s(" − points ")
	qt.yuan(q.RedeemValue)
	qt.end()

	// 5–6. Points earned.
	if member {
		w, share := sc.w, sc.share
		for i := range q.Lines {
			ql := &q.Lines[i]
			w[i] = 0
			if ql.EarnsPoints {
				ql.EarnBase = ql.Paid
				q.EarnBase += ql.EarnBase
				w[i] = ql.EarnBase
			}
		}
		mu := p.multipliers(m, tier.ID, local)
		q.Multiplier = mu.best
		units := q.EarnBase / p.FenPerPoint
		q.PointsEarned = units * q.Multiplier
		qt.s("points ")
		qt.int(q.PointsEarned)
		qt.s(" = floor(earn base ")
		qt.yuan(q.EarnBase)
		qt.s(" / ")
		qt.yuan(p.FenPerPoint)
		qt.s(") × ")
		qt.int(q.Multiplier)
		qt.s("; ")
		mu.why(qt, local)
		if m.Birthday != "" && !mu.bok {
			qt.s("; birthday ")
			qt.quote(m.Birthday)
			qt.s(" unreadable (want MM-DD or YYYY-MM-DD), birthday multipliers skipped")
		}
		qt.end()
		allocate(q.PointsEarned, w, share, sc)
		for i := range q.Lines {
			if q.Lines[i].EarnsPoints {
				q.Lines[i].EarnedPoints = share[i]
			}
		}
	}
	q.Reasons = qt.cut()
	w := &lineWhy{lines: q.Lines, member: member, tierID: tier.ID, bp: tier.DiscountBP, couponOn: couponOn,
		couponValue: q.CouponValue, redeemPoints: q.RedeemPoints, redeemValue: q.RedeemValue, pointsEarned: q.PointsEarned}
	if couponOn {
		w.couponID = b.Coupon.ID
	}
	for i := range q.Lines {
		q.Lines[i].Reasons = LineReasons{w: w, i: int32(i), covered: couponOn && covers(b.Coupon, q.Lines[i].SKU)}
	}
	return q, nil
}

// firstDuplicate is the index of the first line whose number an earlier line
// already has, or -1. idx is scratch of at least len(lines).
func firstDuplicate(lines []Line, idx []int) int {
	increasing := true
	for i := 1; i < len(lines); i++ {
		if lines[i].LineNo <= lines[i-1].LineNo {
			increasing = false
			break
		}
	}
	if increasing { // how a POS numbers lines: nothing to sort
		return -1
	}
	idx = idx[:len(lines)]
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(lines[a].LineNo, lines[b].LineNo); c != 0 {
			return c
		}
		return a - b
	})
	first := -1
	for k := 1; k < len(idx); k++ {
		if lines[idx[k]].LineNo == lines[idx[k-1]].LineNo && (first < 0 || idx[k] < first) {
			first = idx[k]
		}
	}
	return first
}

func covers(c *Coupon, sku string) bool { return len(c.SKUs) == 0 || slices.Contains(c.SKUs, sku) }

// applyCoupon applies c to q and tells whether it was applied: a coupon
// whose covered lines come to ¥0 would take nothing off and is not.
func (p *Program) applyCoupon(q *Quote, c *Coupon, local time.Time, sc *scratch, qt *text) (bool, error) {
	switch {
	case c.Value <= 0 || c.Value > MaxAmount:
		return false, fmt.Errorf("loyalty: coupon %s: value %d fen must be 1..%d", c.ID, c.Value, MaxAmount)
	case c.Threshold < 0 || c.Threshold > MaxAmount:
		return false, fmt.Errorf("loyalty: coupon %s: threshold %d fen must be 0..%d", c.ID, c.Threshold, MaxAmount)
	case !c.ValidFrom.IsZero() && local.Before(c.ValidFrom):
		return false, fmt.Errorf("loyalty: coupon %s is not valid before %s (sale at %s local); take it off the sale",
			c.ID, c.ValidFrom.In(local.Location()).Format(time.DateTime), local.Format(time.DateTime))
	case !c.ValidUntil.IsZero() && !local.Before(c.ValidUntil):
		return false, fmt.Errorf("loyalty: coupon %s expired at %s (sale at %s local); take it off the sale",
			c.ID, c.ValidUntil.In(local.Location()).Format(time.DateTime), local.Format(time.DateTime))
	}
	w, share := sc.w, sc.share
	var covered, nCovered int64
	for i := range q.Lines {
		ql := &q.Lines[i]
		w[i] = 0
		if covers(c, ql.SKU) {
			w[i] = ql.Net
			covered += ql.Net
			nCovered++
		}
	}
	if nCovered == 0 {
		return false, fmt.Errorf("loyalty: coupon %s covers SKUs %v, none of which is in the basket; take it off the sale", c.ID, c.SKUs)
	}
	if covered < c.Threshold {
		return false, fmt.Errorf("loyalty: coupon %s (满%s减%s) needs %s of covered goods after tier discount; the covered lines come to %s",
			c.ID, yuan(c.Threshold), yuan(c.Value), yuan(c.Threshold), yuan(covered))
	}
	qt.s("coupon ")
	qt.s(c.ID)
	qt.s(" (满")
	qt.yuan(c.Threshold)
	qt.s("减")
	qt.yuan(c.Value)
	if covered == 0 {
		// Taking ¥0 off would still use the coupon up; leave it for a sale it helps.
		qt.s(") not applied: the lines it covers come to ¥0.00, so it would take nothing off; it stays unused")
		qt.end()
		return false, nil
	}
	value := min(c.Value, covered)
	q.CouponValue = value
	qt.s(") takes ")
	qt.yuan(value)
	qt.s(" off covered net ")
	qt.yuan(covered)
	if value < c.Value {
		qt.s(" (capped at the covered net)")
	}
	qt.end()
	allocate(value, w, share, sc)
	for i := range q.Lines {
		if covers(c, q.Lines[i].SKU) {
			q.Lines[i].CouponShare = share[i]
		}
	}
	return true, nil
}

func (p *Program) applyRedeem(q *Quote, pts int64, m *Member, due int64, sc *scratch, qt *text) error {
	r := p.Redemption
	switch {
	case m == nil:
		return errors.New("loyalty: points can only be redeemed by a member; identify the member or remove the redemption")
	case pts < 0:
		return fmt.Errorf("loyalty: points to redeem %d is negative", pts)
	case pts > MaxPoints:
		return fmt.Errorf("loyalty: points to redeem %d is more than %d", pts, MaxPoints)
	case pts%r.Step != 0:
		return fmt.Errorf("loyalty: points are redeemed in multiples of %d; %d is not one (use %d)", r.Step, pts, pts/r.Step*r.Step)
	}
	avail := max(m.Points, 0)
	if pts > avail {
		return fmt.Errorf("loyalty: member %s has %d points available, %d asked; redeem at most %d", m.ID, avail, pts, avail/r.Step*r.Step)
	}
	maxValue := mulDiv(due, r.MaxShareBP, 10000)
	maxPts := mulDiv(maxValue, r.PointsPerYuan, 100) / r.Step * r.Step
	asked, capped := pts, pts > maxPts
	if capped {
		pts = maxPts
	}
	value := pts * 100 / r.PointsPerYuan
	q.RedeemPoints, q.RedeemValue = pts, value
	qt.s("redeem ")
	qt.int(pts)
	qt.s(" points = ")
	qt.yuan(value)
	qt.s(" at ")
	qt.int(r.PointsPerYuan)
	qt.s(" points per yuan")
	if capped {
		qt.s(" (asked ")
		qt.int(asked)
		qt.s("; capped at ")
		qt.bp(r.MaxShareBP)
		qt.s(" of due ")
		qt.yuan(due)
		qt.s(" = ")
		qt.yuan(maxValue)
		qt.s(", in steps of ")
		qt.int(r.Step)
		qt.s(")")
	}
	qt.end()
	if pts == 0 {
		return nil
	}
	w, share := sc.w, sc.share
	for i := range q.Lines {
		w[i] = q.Lines[i].Net - q.Lines[i].CouponShare
	}
	allocate(value, w, share, sc)
	for i := range q.Lines {
		q.Lines[i].RedeemShare = share[i]
		w[i] = share[i]
	}
	allocate(pts, w, share, sc)
	for i := range q.Lines {
		q.Lines[i].RedeemPoints = share[i]
	}
	return nil
}

// The points multipliers, in the order that names a tie.
const (
	multBirthday = iota
	multBirthdayMonth
	multMemberDay
	multOffSeason
)

// multHits are the multipliers that apply to a sale.
type multHits struct {
	n      int
	kind   [4]int
	factor [4]int64
	best   int64 // the factor used: the highest, 1 when none is above 1
	name   int   // the hit that gives best; -1: none
	bok    bool  // the birthday was readable
	bm     time.Month
	cm     time.Month // birthday as celebrated this year
	cd     int
	p      *Program
}

// multipliers finds every multiplier that applies at local time and the
// highest factor; on a tie the first in the order birthday, birthday month,
// member day, off-season names it. They never multiply each other.
func (p *Program) multipliers(m *Member, tierID string, local time.Time) multHits {
	ms := &p.Multipliers
	h := multHits{best: 1, name: -1, p: p}
	consider := func(kind int, mu *Multiplier, ok bool) {
		if !ok || mu.Factor == 0 || (len(mu.Tiers) > 0 && !slices.Contains(mu.Tiers, tierID)) {
			return
		}
		h.kind[h.n], h.factor[h.n] = kind, mu.Factor
		if mu.Factor > h.best {
			h.best, h.name = mu.Factor, h.n
		}
		h.n++
	}
	var bd int
	h.bm, bd, h.bok = parseBirthday(m.Birthday)
	if h.bok {
		h.cm, h.cd = celebratedOn(h.bm, bd, local.Year())
		consider(multBirthday, &ms.Birthday, local.Month() == h.cm && local.Day() == h.cd)
		consider(multBirthdayMonth, &ms.BirthdayMonth, local.Month() == h.bm)
	}
	consider(multMemberDay, &ms.MemberDay, local.Day() == ms.MemberDay.DayOfMonth)
	consider(multOffSeason, &ms.OffSeason, local.Weekday() == ms.OffSeason.Weekday && slices.Contains(ms.OffSeason.Months, local.Month()))
	return h
}

// why writes which multiplier applies on the local date and, when several
// do, all of them.
func (h *multHits) why(t *text, local time.Time) {
	if h.name < 0 {
		t.s("no multiplier applies on ")
		t.date(local)
		return
	}
	t.s("multiplier ")
	h.label(t, h.name, local)
	t.s(" on ")
	t.date(local)
	if h.n == 1 {
		return
	}
	t.s(" (applying: ")
	for i := 0; i < h.n; i++ {
		if i > 0 {
			t.s(", ")
		}
		h.label(t, i, local)
	}
	t.s("; the highest applies, no stacking)")
}

// label writes hit i as "member day (day 18) ×2".
func (h *multHits) label(t *text, i int, local time.Time) {
	switch h.kind[i] {
	case multBirthday:
		t.s("birthday (")
		t.two(int(h.cm))
		t.s("-")
		t.two(h.cd)
		t.s(")")
	case multBirthdayMonth:
		t.s("birthday month (")
		t.s(h.bm.String())
		t.s(")")
	case multMemberDay:
		t.s("member day (day ")
		t.int(int64(h.p.Multipliers.MemberDay.DayOfMonth))
		t.s(")")
	case multOffSeason:
		t.s("off-season ")
		t.s(local.Weekday().String())
		t.s(" in ")
		t.s(local.Month().String())
	}
	t.s(" ×")
	t.int(h.factor[i])
}

// text collects reasons in one buffer; cut copies it into one string and
// slices the reasons from it.
type text struct {
	b    []byte
	ends []int // where each reason ends in b
}

func (t *text) s(s string)     { t.b = append(t.b, s...) }
func (t *text) yuan(fen int64) { t.b = appendYuan(t.b, fen) }
func (t *text) int(v int64)    { t.b = strconv.AppendInt(t.b, v, 10) }
func (t *text) bp(bp int64)    { t.b = appendBP(t.b, bp) }
func (t *text) quote(s string) { t.b = strconv.AppendQuote(t.b, s) }

// two writes 0..99 as two digits.
func (t *text) two(v int) { t.b = append(t.b, byte('0'+v/10%10), byte('0'+v%10)) }

func (t *text) date(local time.Time) { t.b = local.AppendFormat(t.b, "2006-01-02 Mon") }

// end closes the reason being written.
func (t *text) end() { t.ends = append(t.ends, len(t.b)) }

// cut returns the reasons written, slices of one new string, and empties t.
func (t *text) cut() []string {
	s, start := string(t.b), 0
	out := make([]string, len(t.ends))
	for i, e := range t.ends {
		out[i], start = s[start:e], e
	}
	t.b, t.ends = t.b[:0], t.ends[:0]
	return out
}

// parseBirthday reads "MM-DD" or "YYYY-MM-DD".
func parseBirthday(s string) (time.Month, int, bool) {
	var t time.Time
	var err error
	switch len(s) {
	case 5:
		// Year 2000 is a leap year, so 02-29 is accepted.
		t, err = time.Parse("2006-01-02", "2000-"+s)
	case 10:
		t, err = time.Parse("2006-01-02", s)
	default:
		return 0, 0, false
	}
	if err != nil {
		return 0, 0, false
	}
	return t.Month(), t.Day(), true
}

// celebratedOn is the day a birthday falls on in year: 29 February is
// celebrated on 28 February in years without one.
func celebratedOn(m time.Month, d, year int) (time.Month, int) {
	if m == time.February && d == 29 && !isLeap(year) {
		return time.February, 28
	}
	return m, d
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// roundHalfUpBP is round_half_up(v × bp / 10000) for v, bp >= 0, with a
// 128-bit product.
func roundHalfUpBP(v, bp int64) int64 {
	hi, lo := bits.Mul64(uint64(v), uint64(bp))
	lo, carry := bits.Add64(lo, 5000, 0)
	hi += carry
	qt, _ := bits.Div64(hi, lo, 10000)
	return int64(qt)
}

func bpPercent(bp int64) string { return string(appendBP(nil, bp)) }

// appendBP appends basis points as a percentage: 500 → "5%", 1250 → "12.50%".
func appendBP(b []byte, bp int64) []byte {
	switch {
	case bp%100 == 0:
		b = strconv.AppendInt(b, bp/100, 10)
	case bp > 0:
		b = strconv.AppendInt(b, bp/100, 10)
		b = append(b, '.', byte('0'+bp%100/10), byte('0'+bp%10))
	default: // never from a parsed program; kept as fmt writes it
		return fmt.Appendf(b, "%d.%02d%%", bp/100, bp%100)
	}
	return append(b, '%')
}

// scratch holds the buffers pricing one basket needs besides the quote:
// weights and parts of the spreads, what allocate needs, and the reason text
// before it is copied out. Quotes reuse them through a pool.
type scratch struct {
	w, share []int64
	rem      []uint64
	idx      []int
	qt       text
}

func newScratch(n int) *scratch {
	sc := &scratch{}
	sc.size(n)
	return sc
}

// size makes the buffers n lines long.
func (sc *scratch) size(n int) {
	sc.w = slices.Grow(sc.w[:0], n)[:n]
	sc.share = slices.Grow(sc.share[:0], n)[:n]
	sc.rem = slices.Grow(sc.rem[:0], n)[:n]
	sc.idx = slices.Grow(sc.idx[:0], n)[:n]
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch(n int) *scratch {
	sc := scratchPool.Get().(*scratch)
	sc.size(n)
	sc.qt.b, sc.qt.ends = sc.qt.b[:0], sc.qt.ends[:0]
	return sc
}

// scratchKeep is the most quote text a pooled scratch keeps: a rare huge id
// named by a caller does not pin its buffer. (Spreads are bounded by MaxLines.)
const scratchKeep = 1 << 16

func putScratch(sc *scratch) {
	if cap(sc.qt.b) > scratchKeep {
		return
	}
	scratchPool.Put(sc)
}

// allocate splits total over weights w into out by the largest-remainder
// method: each part is floor(total × w_i / Σw), and the units left over go
// one each to the largest remainders, ties to the earlier index. Parts sum
// exactly to total, and a zero weight gets nothing. Requires total >= 0,
// w_i >= 0, and total <= Σw or the quotients fitting int64 (true for every
// use here: money is bounded by MaxAmount, points by MaxPoints).
func allocate(total int64, w, out []int64, sc *scratch) {
	var sum uint64
	for _, x := range w {
		sum += uint64(x)
	}
	if total == 0 || sum == 0 {
		clear(out)
		return
	}
	left := total
	sc.idx = sc.idx[:0]
	for i, x := range w {
		qt, r := mulDivRem(uint64(total), uint64(x), sum)
		out[i] = int64(qt)
		sc.rem[i] = r
		left -= int64(qt)
		if r > 0 {
			sc.idx = append(sc.idx, i)
		}
	}
	if left == 0 {
		return
	}
	// Fewer units are left than lines with a remainder, so only those compete.
	// Ties on the remainder are ordered by index, a total order, so an
	// unstable sort gives the one order a stable sort would.
	slices.SortFunc(sc.idx, func(a, b int) int {
		switch {
		case sc.rem[a] > sc.rem[b]:
			return -1
		case sc.rem[a] < sc.rem[b]:
			return 1
		}
		return a - b
	})
	for _, i := range sc.idx[:left] {
		out[i]++
	}
}

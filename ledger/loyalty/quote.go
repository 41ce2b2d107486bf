package loyalty

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
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

	// 1. Gross, tier discount, net.
	seen := make(map[int]struct{}, n)
	for i, l := range b.Lines {
		if _, dup := seen[l.LineNo]; dup {
			return Quote{}, fmt.Errorf("loyalty: line number %d appears twice; number every line once", l.LineNo)
		}
		seen[l.LineNo] = struct{}{}
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
		ql.Reasons = make([]string, 0, 6)
		ql.Reasons = append(ql.Reasons, "gross "+yuan(ql.Gross)+" = "+strconv.FormatInt(l.Qty, 10)+" × "+yuan(l.UnitPrice))
		switch {
		case !member:
			ql.Reasons = append(ql.Reasons, "no tier discount: non-member")
		case !l.Discountable:
			ql.Reasons = append(ql.Reasons, "no tier discount: line not discountable (special price)")
		case tier.DiscountBP == 0:
			ql.Reasons = append(ql.Reasons, "no tier discount: tier "+tier.ID+" has none")
		default:
			ql.Discount = roundHalfUpBP(ql.Gross, tier.DiscountBP)
			ql.Reasons = append(ql.Reasons, "tier discount "+yuan(ql.Discount)+": "+tier.ID+" "+bpPercent(tier.DiscountBP)+" off "+yuan(ql.Gross)+", rounded half up at the fen")
		}
		ql.Net = ql.Gross - ql.Discount
		q.Gross += ql.Gross
		q.Discount += ql.Discount
		if q.Gross > MaxAmount {
			return Quote{}, fmt.Errorf("loyalty: the basket comes to more than %d fen; split the sale", MaxAmount)
		}
	}
	q.Net = q.Gross - q.Discount
	q.Reasons = append(q.Reasons, fmt.Sprintf("gross %s, tier discount %s, net %s", yuan(q.Gross), yuan(q.Discount), yuan(q.Net)))
	if member {
		q.Reasons = append(q.Reasons, fmt.Sprintf("member %s, tier %s (%s off discountable lines), program v%d", m.ID, tier.ID, bpPercent(tier.DiscountBP), p.Version))
	} else {
		q.Reasons = append(q.Reasons, fmt.Sprintf("non-member: no tier discount, no points, no redemption (program v%d)", p.Version))
	}

	w := make([]int64, n)     // allocation weights, reused
	share := make([]int64, n) // allocation results, reused
	sc := newScratch(n)

	// 2. One threshold coupon on the lines it covers.
	if c := b.Coupon; c != nil {
		if err := p.applyCoupon(&q, c, local, w, share, sc); err != nil {
			return Quote{}, err
		}
	}

	// 3–4. Points redemption.
	due := q.Net - q.CouponValue
	if b.RedeemPoints != 0 {
		if err := p.applyRedeem(&q, b.RedeemPoints, m, due, w, share, sc); err != nil {
			return Quote{}, err
		}
	}
	for i := range q.Lines {
		ql := &q.Lines[i]
		ql.Paid = ql.Net - ql.CouponShare - ql.RedeemShare
	}
	q.Due = due - q.RedeemValue
	q.Reasons = append(q.Reasons, fmt.Sprintf("due %s = net %s − coupon %s − points %s", yuan(q.Due), yuan(q.Net), yuan(q.CouponValue), yuan(q.RedeemValue)))

	// 5–6. Points earned.
	if !member {
		for i := range q.Lines {
			q.Lines[i].Reasons = append(q.Lines[i].Reasons, "earns no points: non-member")
		}
		return q, nil
	}
	for i := range q.Lines {
		ql := &q.Lines[i]
		if ql.EarnsPoints {
			ql.EarnBase = ql.Paid
			q.EarnBase += ql.EarnBase
			w[i] = ql.EarnBase
		} else {
			w[i] = 0
			ql.Reasons = append(ql.Reasons, "earns no points: line marked not earning")
		}
	}
	var why string
	q.Multiplier, why = p.multiplier(m, tier, local)
	units := q.EarnBase / p.FenPerPoint
	q.PointsEarned = units * q.Multiplier
	q.Reasons = append(q.Reasons, fmt.Sprintf("points %d = floor(earn base %s / %s) × %d; %s",
		q.PointsEarned, yuan(q.EarnBase), yuan(p.FenPerPoint), q.Multiplier, why))
	allocate(q.PointsEarned, w, share, sc)
	for i := range q.Lines {
		ql := &q.Lines[i]
		if !ql.EarnsPoints {
			continue
		}
		ql.EarnedPoints = share[i]
		ql.Reasons = append(ql.Reasons, "earn base "+yuan(ql.EarnBase)+" (paid); "+strconv.FormatInt(ql.EarnedPoints, 10)+
			" of the sale's "+strconv.FormatInt(q.PointsEarned, 10)+" points by earn base share, largest remainder")
	}
	return q, nil
}

func (p *Program) applyCoupon(q *Quote, c *Coupon, local time.Time, w, share []int64, sc *scratch) error {
	switch {
	case c.Value <= 0 || c.Value > MaxAmount:
		return fmt.Errorf("loyalty: coupon %s: value %d fen must be 1..%d", c.ID, c.Value, MaxAmount)
	case c.Threshold < 0 || c.Threshold > MaxAmount:
		return fmt.Errorf("loyalty: coupon %s: threshold %d fen must be 0..%d", c.ID, c.Threshold, MaxAmount)
	case !c.ValidFrom.IsZero() && local.Before(c.ValidFrom):
		return fmt.Errorf("loyalty: coupon %s is not valid before %s (sale at %s local); take it off the sale",
			c.ID, c.ValidFrom.In(local.Location()).Format(time.DateTime), local.Format(time.DateTime))
	case !c.ValidUntil.IsZero() && !local.Before(c.ValidUntil):
		return fmt.Errorf("loyalty: coupon %s expired at %s (sale at %s local); take it off the sale",
			c.ID, c.ValidUntil.In(local.Location()).Format(time.DateTime), local.Format(time.DateTime))
	}
	var covered, nCovered int64
	for i := range q.Lines {
		ql := &q.Lines[i]
		w[i] = 0
		if len(c.SKUs) == 0 || slices.Contains(c.SKUs, ql.SKU) {
			w[i] = ql.Net
			covered += ql.Net
			nCovered++
		}
	}
	if nCovered == 0 {
		return fmt.Errorf("loyalty: coupon %s covers SKUs %v, none of which is in the basket; take it off the sale", c.ID, c.SKUs)
	}
	if covered < c.Threshold {
		return fmt.Errorf("loyalty: coupon %s (满%s减%s) needs %s of covered goods after tier discount; the covered lines come to %s",
			c.ID, yuan(c.Threshold), yuan(c.Value), yuan(c.Threshold), yuan(covered))
	}
	if covered == 0 {
		// Taking ¥0 off would still use the coupon up; leave it for a sale it helps.
		q.Reasons = append(q.Reasons, fmt.Sprintf("coupon %s (满%s减%s) not applied: the lines it covers come to ¥0.00, so it would take nothing off; it stays unused",
			c.ID, yuan(c.Threshold), yuan(c.Value)))
		return nil
	}
	value := min(c.Value, covered)
	q.CouponValue = value
	msg := fmt.Sprintf("coupon %s (满%s减%s) takes %s off covered net %s", c.ID, yuan(c.Threshold), yuan(c.Value), yuan(value), yuan(covered))
	if value < c.Value {
		msg += " (capped at the covered net)"
	}
	q.Reasons = append(q.Reasons, msg)
	allocate(value, w, share, sc)
	for i := range q.Lines {
		ql := &q.Lines[i]
		if w[i] == 0 && !(len(c.SKUs) == 0 || slices.Contains(c.SKUs, ql.SKU)) {
			ql.Reasons = append(ql.Reasons, "coupon "+c.ID+": line not covered")
			continue
		}
		ql.CouponShare = share[i]
		ql.Reasons = append(ql.Reasons, "coupon share "+yuan(share[i])+" of "+yuan(value)+" by net, largest remainder")
	}
	return nil
}

func (p *Program) applyRedeem(q *Quote, pts int64, m *Member, due int64, w, share []int64, sc *scratch) error {
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
	msg := ""
	if pts > maxPts {
		msg = fmt.Sprintf(" (asked %d; capped at %s of due %s = %s, in steps of %d)", pts, bpPercent(r.MaxShareBP), yuan(due), yuan(maxValue), r.Step)
		pts = maxPts
	}
	value := pts * 100 / r.PointsPerYuan
	q.RedeemPoints, q.RedeemValue = pts, value
	q.Reasons = append(q.Reasons, fmt.Sprintf("redeem %d points = %s at %d points per yuan%s", pts, yuan(value), r.PointsPerYuan, msg))
	if pts == 0 {
		return nil
	}
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
		ql := &q.Lines[i]
		ql.RedeemPoints = share[i]
		ql.Reasons = append(ql.Reasons, "points share "+yuan(ql.RedeemShare)+" ("+strconv.FormatInt(ql.RedeemPoints, 10)+
			" points) of "+yuan(value)+" by amount due after coupon, largest remainder")
	}
	return nil
}

// multiplier returns the highest multiplier that applies at local time and
// why; on a tie the first in the order birthday, birthday month, member
// day, off-season names it. They never multiply each other.
func (p *Program) multiplier(m *Member, tier Tier, local time.Time) (int64, string) {
	ms := p.Multipliers
	best, name := int64(1), ""
	var applied []string
	consider := func(mu Multiplier, ok bool, label string) {
		if !ok || mu.Factor == 0 || (len(mu.Tiers) > 0 && !slices.Contains(mu.Tiers, tier.ID)) {
			return
		}
		applied = append(applied, fmt.Sprintf("%s ×%d", label, mu.Factor))
		if mu.Factor > best {
			best, name = mu.Factor, fmt.Sprintf("%s ×%d", label, mu.Factor)
		}
	}
	bm, bd, bok := parseBirthday(m.Birthday)
	if bok {
		cm, cd := celebratedOn(bm, bd, local.Year())
		consider(ms.Birthday, local.Month() == cm && local.Day() == cd,
			fmt.Sprintf("birthday (%02d-%02d)", cm, cd))
		consider(ms.BirthdayMonth, local.Month() == bm, "birthday month ("+bm.String()+")")
	}
	consider(ms.MemberDay, local.Day() == ms.MemberDay.DayOfMonth, fmt.Sprintf("member day (day %d)", ms.MemberDay.DayOfMonth))
	consider(ms.OffSeason, local.Weekday() == ms.OffSeason.Weekday && slices.Contains(ms.OffSeason.Months, local.Month()),
		"off-season "+local.Weekday().String()+" in "+local.Month().String())
	var why string
	switch {
	case name == "":
		why = "no multiplier applies on " + local.Format("2006-01-02 Mon")
	case len(applied) == 1:
		why = "multiplier " + name + " on " + local.Format("2006-01-02 Mon")
	default:
		why = fmt.Sprintf("multiplier %s on %s (applying: %s; the highest applies, no stacking)", name, local.Format("2006-01-02 Mon"), strings.Join(applied, ", "))
	}
	if m.Birthday != "" && !bok {
		why += fmt.Sprintf("; birthday %q unreadable (want MM-DD or YYYY-MM-DD), birthday multipliers skipped", m.Birthday)
	}
	return best, why
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

func bpPercent(bp int64) string {
	if bp%100 == 0 {
		return strconv.FormatInt(bp/100, 10) + "%"
	}
	return fmt.Sprintf("%d.%02d%%", bp/100, bp%100)
}

// scratch holds the buffers one allocation needs, reused across the
// allocations of a quote.
type scratch struct {
	rem []uint64
	idx []int
}

func newScratch(n int) *scratch { return &scratch{rem: make([]uint64, n), idx: make([]int, n)} }

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
	slices.SortStableFunc(sc.idx, func(a, b int) int {
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

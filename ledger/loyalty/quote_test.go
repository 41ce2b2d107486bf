package loyalty

import (
	"strings"
	"testing"
	"time"
)

var sh = mustLoc("Asia/Shanghai")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// local is a wall-clock time in Shanghai.
func local(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, sh)
}

// plainDay is a Tuesday in May 2026: no member day, no off-season.
var plainDay = local(2026, 5, 5, 12, 0, 0)

func line(no int, sku string, qty, price int64) Line {
	return Line{LineNo: no, SKU: sku, Qty: qty, UnitPrice: price, Discountable: true, EarnsPoints: true}
}

func mustQuote(t *testing.T, p *Program, b Basket, m *Member, at time.Time) Quote {
	t.Helper()
	q, err := p.Quote(b, m, at)
	if err != nil {
		t.Fatalf("quote: %v", err)
	}
	checkInvariants(t, p, b, m, q)
	return q
}

// checkInvariants are the rules every quote must satisfy.
func checkInvariants(t testing.TB, p *Program, b Basket, m *Member, q Quote) {
	t.Helper()
	var gross, disc, net, cpn, rv, rp, paid, eb, pts int64
	for i, l := range q.Lines {
		if l.Line != b.Lines[i] {
			t.Fatalf("line %d: input line not echoed: %+v vs %+v", i, l.Line, b.Lines[i])
		}
		if l.Gross != l.Qty*l.UnitPrice || l.Net != l.Gross-l.Discount || l.Paid != l.Net-l.CouponShare-l.RedeemShare {
			t.Fatalf("line %d arithmetic broken: %+v", l.LineNo, l)
		}
		for _, v := range []int64{l.Discount, l.Net, l.CouponShare, l.RedeemShare, l.RedeemPoints, l.Paid, l.EarnBase, l.EarnedPoints} {
			if v < 0 {
				t.Fatalf("line %d has a negative figure: %+v", l.LineNo, l)
			}
		}
		if !l.EarnsPoints && (l.EarnBase != 0 || l.EarnedPoints != 0) {
			t.Fatalf("line %d does not earn but has earn base/points: %+v", l.LineNo, l)
		}
		if l.Reasons.Len() < 3 || l.Reasons.Len() != q.Lines[0].Reasons.Len() || len(l.Reasons.Strings()) != l.Reasons.Len() {
			t.Fatalf("line %d has %d reasons (line 1: %d): %q", l.LineNo, l.Reasons.Len(), q.Lines[0].Reasons.Len(), l.Reasons)
		}
		gross += l.Gross
		disc += l.Discount
		net += l.Net
		cpn += l.CouponShare
		rv += l.RedeemShare
		rp += l.RedeemPoints
		paid += l.Paid
		eb += l.EarnBase
		pts += l.EarnedPoints
	}
	if gross != q.Gross || disc != q.Discount || net != q.Net || cpn != q.CouponValue || rv != q.RedeemValue ||
		rp != q.RedeemPoints || paid != q.Due || eb != q.EarnBase || pts != q.PointsEarned {
		t.Fatalf("line sums do not match totals: sums gross %d disc %d net %d coupon %d redeem %d/%d paid %d base %d pts %d; quote %+v",
			gross, disc, net, cpn, rv, rp, paid, eb, pts, q)
	}
	if q.Due != q.Net-q.CouponValue-q.RedeemValue || q.Due < 0 {
		t.Fatalf("due %d != net %d - coupon %d - redeem %d", q.Due, q.Net, q.CouponValue, q.RedeemValue)
	}
	if q.RedeemValue*10000 > (q.Net-q.CouponValue)*p.Redemption.MaxShareBP {
		t.Fatalf("redemption %d over the %d bp cap of %d", q.RedeemValue, p.Redemption.MaxShareBP, q.Net-q.CouponValue)
	}
	if q.RedeemPoints%p.Redemption.Step != 0 || q.RedeemValue != q.RedeemPoints*100/p.Redemption.PointsPerYuan {
		t.Fatalf("redemption %d points / %d fen breaks the step or rate", q.RedeemPoints, q.RedeemValue)
	}
	if m == nil {
		if q.Discount != 0 || q.PointsEarned != 0 || q.RedeemPoints != 0 || q.Tier != "" {
			t.Fatalf("non-member got member benefits: %+v", q)
		}
	} else if q.PointsEarned != q.EarnBase/p.FenPerPoint*q.Multiplier || q.Multiplier < 1 {
		t.Fatalf("points %d != floor(%d/%d) × %d", q.PointsEarned, q.EarnBase, p.FenPerPoint, q.Multiplier)
	}
	if len(q.Reasons) < 3 {
		t.Fatalf("quote has too few reasons: %q", q.Reasons)
	}
}

func TestTierDiscountPerTier(t *testing.T) {
	p := DefaultProgram()
	for _, tc := range []struct {
		tier        string
		member      bool
		disc, point int64
	}{
		{"", false, 0, 0},
		{"", true, 500, 95}, // empty tier: the enrol tier (silver)
		{"silver", true, 500, 95},
		{"gold", true, 1200, 88},
		{"diamond", true, 2000, 80},
	} {
		var m *Member
		if tc.member {
			m = &Member{ID: "m", Tier: tc.tier}
		}
		q := mustQuote(t, p, Basket{Lines: []Line{line(1, "A", 1, 10000)}}, m, plainDay)
		if q.Discount != tc.disc || q.PointsEarned != tc.point {
			t.Errorf("tier %q member %v: discount %d points %d, want %d and %d", tc.tier, tc.member, q.Discount, q.PointsEarned, tc.disc, tc.point)
		}
		if tc.member && !strings.Contains(q.Lines[0].Reasons.String(), "rounded half up") {
			t.Errorf("tier %q: discount reason missing: %q", tc.tier, q.Lines[0].Reasons)
		}
	}
	if _, err := p.Quote(Basket{Lines: []Line{line(1, "A", 1, 100)}}, &Member{ID: "m", Tier: "platinum"}, plainDay); err == nil ||
		!strings.Contains(err.Error(), `tier "platinum"`) {
		t.Errorf("unknown tier: err %v", err)
	}
}

func TestRoundHalfUpPerLine(t *testing.T) {
	p := DefaultProgram()
	m := &Member{ID: "m", Tier: "silver"} // 5 %: gross 10 → 0.5 fen exactly
	for _, tc := range []struct{ gross, disc int64 }{
		{9, 0},  // 0.45 → 0
		{10, 1}, // 0.5 → 1 (half up)
		{29, 1}, // 1.45 → 1
		{30, 2}, // 1.5 → 2
		{31, 2}, // 1.55 → 2
		{1, 0},
		{0, 0},
		{9999, 500}, // 499.95 → 500
	} {
		q := mustQuote(t, p, Basket{Lines: []Line{line(1, "A", 1, tc.gross)}}, m, plainDay)
		if q.Discount != tc.disc {
			t.Errorf("silver on %d fen: discount %d, want %d", tc.gross, q.Discount, tc.disc)
		}
	}
	// Per line, not per basket: two lines of 10 fen each round up separately
	// (1 + 1), where the basket total 20 would give 1.
	q := mustQuote(t, p, Basket{Lines: []Line{line(1, "A", 1, 10), line(2, "B", 1, 10)}}, m, plainDay)
	if q.Discount != 2 {
		t.Errorf("two 10-fen lines: discount %d, want 2 (rounded per line)", q.Discount)
	}
	// Per line on qty × price: 3 × 10 = 30 → 1.5 → 2, not 3 × round(0.5).
	q = mustQuote(t, p, Basket{Lines: []Line{line(1, "A", 3, 10)}}, m, plainDay)
	if q.Discount != 2 {
		t.Errorf("3 × 10 fen: discount %d, want 2 (on the line gross)", q.Discount)
	}
}

func TestNonDiscountableAndNonEarningLines(t *testing.T) {
	p := DefaultProgram()
	m := &Member{ID: "m", Tier: "gold"}
	b := Basket{Lines: []Line{
		{LineNo: 1, SKU: "special", Qty: 1, UnitPrice: 10000, Discountable: false, EarnsPoints: true},
		{LineNo: 2, SKU: "counter", Qty: 2, UnitPrice: 5000, Discountable: true, EarnsPoints: false},
		{LineNo: 3, SKU: "normal", Qty: 1, UnitPrice: 5050, Discountable: true, EarnsPoints: true},
	}}
	q := mustQuote(t, p, b, m, plainDay)
	want := []struct{ disc, net, base, pts int64 }{
		{0, 10000, 10000, 100},
		{1200, 8800, 0, 0},
		{606, 4444, 4444, 44},
	}
	for i, w := range want {
		l := q.Lines[i]
		if l.Discount != w.disc || l.Net != w.net || l.EarnBase != w.base || l.EarnedPoints != w.pts {
			t.Errorf("line %d: disc %d net %d base %d pts %d, want %+v", l.LineNo, l.Discount, l.Net, l.EarnBase, l.EarnedPoints, w)
		}
	}
	// floor(14444/100) = 144 points; largest remainder: 10000/14444×144 = 99.69, 4444/14444×144 = 44.30.
	if q.EarnBase != 14444 || q.PointsEarned != 144 {
		t.Errorf("earn base %d points %d, want 14444 and 144", q.EarnBase, q.PointsEarned)
	}
}

func TestMultipliers(t *testing.T) {
	p := DefaultProgram()
	b := Basket{Lines: []Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 10000, EarnsPoints: true}}} // 100 points base
	for _, tc := range []struct {
		name     string
		tier     string
		birthday string
		at       time.Time
		mult     int64
		reason   string
	}{
		{"plain day", "silver", "07-01", plainDay, 1, "no multiplier"},
		{"birthday silver", "silver", "05-05", plainDay, 2, "birthday (05-05)"},
		{"birthday full date", "silver", "1990-05-05", plainDay, 2, "birthday (05-05)"},
		{"birthday month silver: none", "silver", "05-20", plainDay, 1, "no multiplier"},
		{"birthday month gold", "gold", "05-20", plainDay, 2, "birthday month"},
		{"birthday month diamond", "diamond", "05-20", plainDay, 2, "birthday month"},
		{"member day 18th", "silver", "", local(2026, 5, 18, 9, 0, 0), 2, "member day"},
		{"off-season Wednesday April", "silver", "", local(2026, 4, 1, 9, 0, 0), 2, "off-season"},
		{"off-season Wednesday February", "silver", "", local(2026, 2, 4, 9, 0, 0), 2, "off-season"},
		{"Wednesday in May is not off-season", "silver", "", local(2026, 5, 6, 9, 0, 0), 1, "no multiplier"},
		{"Thursday in March is not off-season", "silver", "", local(2026, 3, 5, 9, 0, 0), 1, "no multiplier"},
		{"all four on 18 March 2026 (Wednesday): no stacking", "gold", "03-18", local(2026, 3, 18, 9, 0, 0), 2, "no stacking"},
		{"unreadable birthday", "gold", "13-45", plainDay, 1, "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := mustQuote(t, p, b, &Member{ID: "m", Tier: tc.tier, Birthday: tc.birthday}, tc.at)
			if q.Multiplier != tc.mult || q.PointsEarned != 100*tc.mult {
				t.Errorf("multiplier %d points %d, want %d and %d", q.Multiplier, q.PointsEarned, tc.mult, 100*tc.mult)
			}
			if all := strings.Join(q.Reasons, "|"); !strings.Contains(all, tc.reason) {
				t.Errorf("reasons %q do not mention %q", all, tc.reason)
			}
		})
	}
}

func TestHighestMultiplierWinsWithoutStacking(t *testing.T) {
	p := DefaultProgram()
	p.Multipliers.Birthday.Factor = 3
	p.Multipliers.MemberDay.Factor = 5
	p.Multipliers.OffSeason.Factor = 4
	b := Basket{Lines: []Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 10000, EarnsPoints: true}}}
	m := &Member{ID: "m", Tier: "gold", Birthday: "03-18"}
	q := mustQuote(t, p, b, m, local(2026, 3, 18, 9, 0, 0)) // birthday 3, month 2, member day 5, off-season 4
	if q.Multiplier != 5 || q.PointsEarned != 500 {
		t.Fatalf("multiplier %d points %d, want 5 and 500 (highest, not 3×2×5×4)", q.Multiplier, q.PointsEarned)
	}
	q = mustQuote(t, p, b, m, local(2026, 3, 25, 9, 0, 0)) // Wednesday: month 2, off-season 4
	if q.Multiplier != 4 {
		t.Fatalf("25 March: multiplier %d, want 4", q.Multiplier)
	}
	// A multiplier limited to tiers does not apply to others.
	p.Multipliers.MemberDay.Tiers = []string{"diamond"}
	q = mustQuote(t, p, b, m, local(2026, 5, 18, 9, 0, 0))
	if q.Multiplier != 1 {
		t.Fatalf("member day limited to diamond gave gold ×%d", q.Multiplier)
	}
}

func TestTimeZoneEdges(t *testing.T) {
	p := DefaultProgram()
	b := Basket{Lines: []Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 10000, EarnsPoints: true}}}
	m := &Member{ID: "m", Tier: "silver"}
	for _, tc := range []struct {
		name string
		at   time.Time
		mult int64
	}{
		{"23:59:59 on the 17th (Tuesday)", local(2026, 3, 17, 23, 59, 59), 1},
		{"00:00:00 on the 18th", local(2026, 3, 18, 0, 0, 0), 2},
		{"UTC 16:30 on the 17th is 00:30 on the 18th", time.Date(2026, 3, 17, 16, 30, 0, 0, time.UTC), 2},
		{"UTC 15:59:59 on the 17th is 23:59:59 on the 17th", time.Date(2026, 3, 17, 15, 59, 59, 0, time.UTC), 1},
		{"23:59:59 on the 18th", local(2026, 5, 18, 23, 59, 59), 2},
		{"UTC 16:00 on the 18th is 00:00 on the 19th", time.Date(2026, 5, 18, 16, 0, 0, 0, time.UTC), 1},
		{"a PC in New York: 12:30 on the 17th there is 00:30 on the 18th here", time.Date(2026, 5, 17, 12, 30, 0, 0, mustLoc("America/New_York")), 2},
	} {
		q := mustQuote(t, p, b, m, tc.at)
		if q.Multiplier != tc.mult {
			t.Errorf("%s: multiplier %d, want %d (%q)", tc.name, q.Multiplier, tc.mult, q.Reasons)
		}
	}
	// Off-season is also judged on the local weekday: Tuesday 17:00 UTC
	// on 31 March is Wednesday 1 April 01:00 in Shanghai.
	q := mustQuote(t, p, b, m, time.Date(2026, 3, 31, 17, 0, 0, 0, time.UTC))
	if q.Multiplier != 2 {
		t.Errorf("UTC Tuesday evening = Shanghai Wednesday: multiplier %d, want 2", q.Multiplier)
	}
}

func TestBirthdayFebruary29(t *testing.T) {
	p := DefaultProgram()
	b := Basket{Lines: []Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 10000, EarnsPoints: true}}}
	for _, tc := range []struct {
		name     string
		birthday string
		at       time.Time
		mult     int64
	}{
		{"non-leap year: celebrated 28 February", "02-29", local(2026, 2, 28, 10, 0, 0), 2},
		{"non-leap year: not 1 March", "02-29", local(2026, 3, 1, 10, 0, 0), 1},
		{"non-leap year: 27 February is not it", "02-29", local(2026, 2, 27, 10, 0, 0), 1},
		{"leap year: 29 February", "02-29", local(2028, 2, 29, 10, 0, 0), 2},
		{"leap year: not 28 February", "02-29", local(2028, 2, 28, 10, 0, 0), 1},
		{"full date form", "2000-02-29", local(2026, 2, 28, 10, 0, 0), 2},
		{"2100 is not a leap year", "02-29", local(2100, 2, 28, 10, 0, 0), 2},
		{"28 February birthday in a leap year stays the 28th", "02-28", local(2028, 2, 29, 10, 0, 0), 1},
		{"invalid date 1999-02-29 is ignored", "1999-02-29", local(2026, 2, 28, 10, 0, 0), 1},
	} {
		q := mustQuote(t, p, b, &Member{ID: "m", Tier: "silver", Birthday: tc.birthday}, tc.at)
		if q.Multiplier != tc.mult {
			t.Errorf("%s: multiplier %d, want %d (%q)", tc.name, q.Multiplier, tc.mult, q.Reasons)
		}
	}
}

func TestRedemption(t *testing.T) {
	p := DefaultProgram()
	nd := func(no int, price int64) Line {
		return Line{LineNo: no, SKU: "X", Qty: 1, UnitPrice: price, EarnsPoints: true}
	}
	for _, tc := range []struct {
		name          string
		lines         []Line
		coupon        *Coupon
		have, ask     int64
		pts, val, due int64
		err           string
	}{
		{name: "whole hundreds", lines: []Line{nd(1, 10000)}, have: 10000, ask: 1200, pts: 1200, val: 1200, due: 8800},
		{name: "exactly 50 %", lines: []Line{nd(1, 10000)}, have: 10000, ask: 5000, pts: 5000, val: 5000, due: 5000},
		{name: "over 50 % is capped", lines: []Line{nd(1, 10000)}, have: 10000, ask: 6000, pts: 5000, val: 5000, due: 5000},
		{name: "cap rounds down to the hundred", lines: []Line{nd(1, 10199)}, have: 10000, ask: 9000, pts: 5000, val: 5000, due: 5199},
		{name: "cap below one hundred", lines: []Line{nd(1, 199)}, have: 10000, ask: 100, pts: 0, val: 0, due: 199},
		{name: "cap after coupon", lines: []Line{nd(1, 10000)}, coupon: &Coupon{ID: "c", Value: 1000}, have: 10000, ask: 5000, pts: 4500, val: 4500, due: 4500},
		{name: "not a hundred", lines: []Line{nd(1, 10000)}, have: 10000, ask: 150, err: "multiples of 100"},
		{name: "negative", lines: []Line{nd(1, 10000)}, have: 10000, ask: -100, err: "negative"},
		{name: "more than available", lines: []Line{nd(1, 100000)}, have: 999, ask: 1000, err: "has 999 points available, 1000 asked"},
		{name: "negative balance", lines: []Line{nd(1, 100000)}, have: -50, ask: 100, err: "has 0 points available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Basket{Lines: tc.lines, Coupon: tc.coupon, RedeemPoints: tc.ask}
			m := &Member{ID: "m", Tier: "silver", Points: tc.have}
			q, ok := quoteChecked(t, p, b, m, plainDay, tc.err)
			if !ok {
				return
			}
			if q.RedeemPoints != tc.pts || q.RedeemValue != tc.val || q.Due != tc.due {
				t.Fatalf("redeemed %d points = %d fen, due %d; want %d, %d, %d", q.RedeemPoints, q.RedeemValue, q.Due, tc.pts, tc.val, tc.due)
			}
			// Points are earned on what is actually paid.
			if q.EarnBase != q.Due || q.PointsEarned != q.Due/100 {
				t.Fatalf("earn base %d points %d for due %d", q.EarnBase, q.PointsEarned, q.Due)
			}
		})
	}
	if _, err := p.Quote(Basket{Lines: []Line{nd(1, 10000)}, RedeemPoints: 100}, nil, plainDay); err == nil ||
		!strings.Contains(err.Error(), "only be redeemed by a member") {
		t.Fatalf("non-member redemption: %v", err)
	}
}

func TestRedemptionSpreadOverLines(t *testing.T) {
	p := DefaultProgram()
	// Coupon only on A, so redemption follows what is left due per line and
	// A (fully covered by its coupon) takes no points.
	b := Basket{
		Lines:        []Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 1000, EarnsPoints: true}, {LineNo: 2, SKU: "B", Qty: 1, UnitPrice: 1000, EarnsPoints: true}},
		Coupon:       &Coupon{ID: "c", Value: 1000, SKUs: []string{"A"}},
		RedeemPoints: 500,
	}
	m := &Member{ID: "m", Points: 1000}
	q := mustQuote(t, p, b, m, plainDay)
	if q.Lines[0].CouponShare != 1000 || q.Lines[0].RedeemShare != 0 || q.Lines[1].RedeemShare != 500 || q.Lines[1].Paid != 500 {
		t.Fatalf("lines %+v", q.Lines)
	}
	// Three equal lines, 100 points: 34/33/33, the tie goes to the first line.
	b = Basket{Lines: []Line{line(1, "A", 1, 1000), line(2, "B", 1, 1000), line(3, "C", 1, 1000)}, RedeemPoints: 100}
	q = mustQuote(t, p, b, &Member{ID: "m", Tier: "diamond", Points: 100}, plainDay)
	got := []int64{q.Lines[0].RedeemPoints, q.Lines[1].RedeemPoints, q.Lines[2].RedeemPoints}
	if got[0] != 34 || got[1] != 33 || got[2] != 33 {
		t.Fatalf("redeem points %v, want [34 33 33]", got)
	}
}

func TestThresholdCoupons(t *testing.T) {
	p := DefaultProgram()
	valid := func(c Coupon) *Coupon {
		c.ValidFrom, c.ValidUntil = local(2026, 1, 1, 0, 0, 0), local(2026, 6, 1, 0, 0, 0)
		return &c
	}
	for _, tc := range []struct {
		name   string
		lines  []Line
		member *Member
		coupon *Coupon
		at     time.Time
		value  int64
		shares []int64
		err    string
	}{
		{name: "满100减15 exactly at threshold", lines: []Line{line(1, "A", 1, 10000)}, coupon: valid(Coupon{ID: "c", Threshold: 10000, Value: 1500}),
			at: plainDay, value: 1500, shares: []int64{1500}},
		{name: "one fen below threshold", lines: []Line{line(1, "A", 1, 9999)}, coupon: valid(Coupon{ID: "c", Threshold: 10000, Value: 1500}),
			at: plainDay, err: "needs ¥100.00 of covered goods"},
		{name: "threshold counts net after tier discount", lines: []Line{line(1, "A", 1, 10500)}, member: &Member{ID: "m", Tier: "silver"},
			coupon: valid(Coupon{ID: "c", Threshold: 10000, Value: 1500}), at: plainDay, err: "come to ¥99.75"},
		{name: "SKU coupon counts only covered lines", lines: []Line{line(1, "A", 1, 6000), line(2, "B", 1, 6000)},
			coupon: valid(Coupon{ID: "c", Threshold: 10000, Value: 1500, SKUs: []string{"A"}}), at: plainDay, err: "come to ¥60.00"},
		{name: "SKU coupon spreads over covered lines only", lines: []Line{line(1, "A", 1, 6000), line(2, "B", 1, 6000), line(3, "C", 1, 3000)},
			coupon: valid(Coupon{ID: "c", Threshold: 9000, Value: 1000, SKUs: []string{"A", "C"}}), at: plainDay, value: 1000, shares: []int64{667, 0, 333}},
		{name: "SKUs not in basket", lines: []Line{line(1, "A", 1, 6000)}, coupon: valid(Coupon{ID: "c", Value: 100, SKUs: []string{"Z"}}),
			at: plainDay, err: "none of which is in the basket"},
		{name: "no threshold, value above the goods is capped", lines: []Line{line(1, "A", 1, 600)}, coupon: valid(Coupon{ID: "c", Value: 1000}),
			at: plainDay, value: 600, shares: []int64{600}},
		{name: "three equal lines: ties to the earlier line", lines: []Line{line(1, "A", 1, 1000), line(2, "B", 1, 1000), line(3, "C", 1, 1000)},
			coupon: valid(Coupon{ID: "c", Value: 200}), at: plainDay, value: 200, shares: []int64{67, 67, 66}},
		{name: "largest remainder, not line order", lines: []Line{line(1, "A", 1, 100), line(2, "B", 1, 200), line(3, "C", 1, 400)},
			coupon: valid(Coupon{ID: "c", Value: 10}), at: plainDay, value: 10, shares: []int64{1, 3, 6}}, // 1.43, 2.86, 5.71
		{name: "not yet valid", lines: []Line{line(1, "A", 1, 10000)}, coupon: valid(Coupon{ID: "c", Value: 100}),
			at: local(2025, 12, 31, 23, 59, 59), err: "not valid before"},
		{name: "valid from its first instant", lines: []Line{line(1, "A", 1, 10000)}, coupon: valid(Coupon{ID: "c", Value: 100}),
			at: local(2026, 1, 1, 0, 0, 0), value: 100, shares: []int64{100}},
		{name: "valid until is exclusive", lines: []Line{line(1, "A", 1, 10000)}, coupon: valid(Coupon{ID: "c", Value: 100}),
			at: time.Date(2026, 5, 31, 16, 0, 0, 0, time.UTC), err: "expired"},
		{name: "last second of validity, stamped in UTC", lines: []Line{line(1, "A", 1, 10000)}, coupon: valid(Coupon{ID: "c", Value: 100}),
			at: time.Date(2026, 5, 31, 15, 59, 59, 0, time.UTC), value: 100, shares: []int64{100}},
		{name: "zero value", lines: []Line{line(1, "A", 1, 10000)}, coupon: &Coupon{ID: "c"}, at: plainDay, err: "value 0 fen"},
		{name: "negative threshold", lines: []Line{line(1, "A", 1, 10000)}, coupon: &Coupon{ID: "c", Value: 1, Threshold: -1}, at: plainDay, err: "threshold -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Basket{Lines: tc.lines, Coupon: tc.coupon}
			q, ok := quoteChecked(t, p, b, tc.member, tc.at, tc.err)
			if !ok {
				return
			}
			if q.CouponValue != tc.value {
				t.Fatalf("coupon value %d, want %d", q.CouponValue, tc.value)
			}
			for i, s := range tc.shares {
				if q.Lines[i].CouponShare != s {
					t.Fatalf("line %d coupon share %d, want %d (all: %+v)", i+1, q.Lines[i].CouponShare, s, q.Lines)
				}
			}
		})
	}
}

func TestPointsSpreadByEarnBase(t *testing.T) {
	p := DefaultProgram()
	// Earn bases 100, 200, 400 fen... scaled: 3333, 3333, 3334 → 100 points; 33.33/33.33/33.34 → 33/33/34.
	b := Basket{Lines: []Line{
		{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 3333, EarnsPoints: true},
		{LineNo: 2, SKU: "B", Qty: 1, UnitPrice: 3333, EarnsPoints: true},
		{LineNo: 3, SKU: "C", Qty: 1, UnitPrice: 3334, EarnsPoints: true},
	}}
	q := mustQuote(t, p, b, &Member{ID: "m"}, plainDay)
	if q.PointsEarned != 100 || q.Lines[0].EarnedPoints != 33 || q.Lines[1].EarnedPoints != 33 || q.Lines[2].EarnedPoints != 34 {
		t.Fatalf("points %d lines %d/%d/%d, want 100 = 33+33+34", q.PointsEarned, q.Lines[0].EarnedPoints, q.Lines[1].EarnedPoints, q.Lines[2].EarnedPoints)
	}
	// Under one yuan earns nothing; floor, not round.
	q = mustQuote(t, p, Basket{Lines: []Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 199, EarnsPoints: true}}}, &Member{ID: "m"}, plainDay)
	if q.PointsEarned != 1 {
		t.Fatalf("199 fen earned %d points, want 1", q.PointsEarned)
	}
}

func TestNonMember(t *testing.T) {
	p := DefaultProgram()
	b := Basket{Lines: []Line{line(1, "A", 2, 5000)}, Coupon: &Coupon{ID: "paper", Threshold: 10000, Value: 1000}}
	q := mustQuote(t, p, b, nil, local(2026, 3, 18, 9, 0, 0))
	if q.Discount != 0 || q.PointsEarned != 0 || q.EarnBase != 0 || q.Multiplier != 0 || q.CouponValue != 1000 || q.Due != 9000 {
		t.Fatalf("non-member quote %+v", q)
	}
}

func TestBadInput(t *testing.T) {
	p := DefaultProgram()
	for _, tc := range []struct {
		name  string
		lines []Line
		at    time.Time
		err   string
	}{
		{"no lines", nil, plainDay, "no lines"},
		{"zero qty", []Line{line(1, "A", 0, 100)}, plainDay, "quantity 0"},
		{"negative qty", []Line{line(1, "A", -1, 100)}, plainDay, "quantity -1"},
		{"negative price", []Line{line(1, "A", 1, -100)}, plainDay, "negative"},
		{"duplicate line", []Line{line(1, "A", 1, 100), line(1, "B", 1, 100)}, plainDay, "appears twice"},
		{"negative line no", []Line{line(-1, "A", 1, 100)}, plainDay, "is negative"},
		{"int64 overflow in a line", []Line{line(1, "A", 1_000_000_000, 1<<40)}, plainDay, "more than"},
		{"huge qty", []Line{line(1, "A", 1<<62, 1)}, plainDay, "quantity"},
		{"basket over the limit", []Line{line(1, "A", 1, MaxAmount), line(2, "B", 1, MaxAmount)}, plainDay, "split the sale"},
		{"zero time", []Line{line(1, "A", 1, 100)}, time.Time{}, "sale time"},
	} {
		if _, err := p.Quote(Basket{Lines: tc.lines}, &Member{ID: "m"}, tc.at); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.err)
		}
	}
	var nilp *Program
	if _, err := nilp.Quote(Basket{Lines: []Line{line(1, "A", 1, 1)}}, nil, plainDay); err == nil {
		t.Error("nil program quoted")
	}
	// The largest allowed basket quotes without overflow.
	b := Basket{Lines: []Line{line(1, "A", 1, MaxAmount)}, Coupon: &Coupon{ID: "c", Value: MaxAmount / 3}, RedeemPoints: MaxPoints / 100 * 100}
	m := &Member{ID: "m", Tier: "diamond", Points: MaxPoints}
	checkInvariants(t, p, b, m, mustQuote(t, p, b, m, plainDay))
}

// quoteChecked quotes b. With wantErr the quote must fail with an error
// containing it (ok is false); otherwise it must succeed and keep the
// invariants.
func quoteChecked(t *testing.T, p *Program, b Basket, m *Member, at time.Time, wantErr string) (q Quote, ok bool) {
	t.Helper()
	q, err := p.Quote(b, m, at)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err %v, want one containing %q", err, wantErr)
		}
		return q, false
	}
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, p, b, m, q)
	return q, true
}

// A coupon whose covered lines come to ¥0 would take nothing off: it is not
// applied (so the ledger does not use it up) and the quote says why.
func TestCouponTakingNothingIsNotApplied(t *testing.T) {
	p := DefaultProgram()
	free := func(no int, sku string) Line { return line(no, sku, 1, 0) }
	for _, tc := range []struct {
		name   string
		lines  []Line
		member *Member
		coupon *Coupon
		value  int64  // coupon value taken off
		reason string // in the quote's reasons
		err    string
	}{
		{name: "¥0 basket, welcome coupon", lines: []Line{free(1, "GIFT")}, member: &Member{ID: "m"},
			coupon: &Coupon{ID: "welcome-m", Value: 1000}, reason: "coupon welcome-m (满¥0.00减¥10.00) not applied: the lines it covers come to ¥0.00"},
		{name: "¥0 basket, non-member paper coupon", lines: []Line{free(1, "GIFT"), free(2, "BAG")},
			coupon: &Coupon{ID: "paper", Value: 500}, reason: "coupon paper (满¥0.00减¥5.00) not applied"},
		{name: "SKU coupon covering only ¥0 lines", lines: []Line{line(1, "A", 1, 5000), free(2, "GIFT")}, member: &Member{ID: "m"},
			coupon: &Coupon{ID: "c", Value: 300, SKUs: []string{"GIFT"}}, reason: "coupon c (满¥0.00减¥3.00) not applied"},
		{name: "one fen of covered goods still uses it", lines: []Line{line(1, "A", 1, 1), free(2, "GIFT")},
			coupon: &Coupon{ID: "c", Value: 300}, value: 1, reason: "coupon c (满¥0.00减¥3.00) takes ¥0.01 off"},
		{name: "a threshold coupon on ¥0 is still short of its threshold", lines: []Line{free(1, "GIFT")}, member: &Member{ID: "m"},
			coupon: &Coupon{ID: "c", Threshold: 100, Value: 300}, err: "needs ¥1.00 of covered goods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, ok := quoteChecked(t, p, Basket{Lines: tc.lines, Coupon: tc.coupon}, tc.member, plainDay, tc.err)
			if !ok {
				return
			}
			if q.CouponValue != tc.value {
				t.Fatalf("coupon value %d, want %d", q.CouponValue, tc.value)
			}
			if all := strings.Join(q.Reasons, "|"); !strings.Contains(all, tc.reason) {
				t.Fatalf("reasons %q lack %q", q.Reasons, tc.reason)
			}
			if tc.value > 0 {
				return
			}
			for _, l := range q.Lines {
				if l.CouponShare != 0 {
					t.Fatalf("line %d has a coupon share of a coupon not applied: %+v", l.LineNo, l)
				}
				for _, r := range l.Reasons.Strings() {
					if strings.Contains(r, "coupon") {
						t.Fatalf("line %d explains a coupon that was not applied: %q", l.LineNo, l.Reasons)
					}
				}
			}
		})
	}
}

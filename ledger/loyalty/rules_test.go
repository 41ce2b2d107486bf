package loyalty

import (
	"strings"
	"testing"
	"time"
)

func TestRefundLineProratesAndLastUnitTakesTheRest(t *testing.T) {
	l := RefundableLine{LineNo: 2, Qty: 3, Paid: 1000, RedeemPoints: 200, EarnedPoints: 10}
	want := []RefundPart{
		{LineNo: 2, Qty: 1, Amount: 333, PointsReversed: 3, PointsRestored: 66},
		{LineNo: 2, Qty: 1, Amount: 333, PointsReversed: 3, PointsRestored: 67}, // floor(2/3 × 200) = 133 − 66
		{LineNo: 2, Qty: 1, Amount: 334, PointsReversed: 4, PointsRestored: 67}, // last unit: the rest
	}
	for i, w := range want {
		got, err := RefundLine(l, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Fatalf("refund %d: %+v, want %+v", i+1, got, w)
		}
		l.RefundedQty += got.Qty
		l.RefundedPaid += got.Amount
		l.RefundedEarned += got.PointsReversed
		l.RefundedRedeem += got.PointsRestored
	}
	if l.RefundedPaid != 1000 || l.RefundedEarned != 10 || l.RefundedRedeem != 200 {
		t.Fatalf("refunds do not add up to the line: %+v", l)
	}
	if _, err := RefundLine(l, 1); err == nil || !strings.Contains(err.Error(), "only 0 of 3 are left") {
		t.Fatalf("refund past the quantity: %v", err)
	}
	// All at once equals the line.
	got, err := RefundLine(RefundableLine{LineNo: 1, Qty: 3, Paid: 1000, RedeemPoints: 200, EarnedPoints: 10}, 3)
	if err != nil || got != (RefundPart{LineNo: 1, Qty: 3, Amount: 1000, PointsReversed: 10, PointsRestored: 200}) {
		t.Fatalf("full line: %+v %v", got, err)
	}
	// Two of three: rounded down.
	got, _ = RefundLine(RefundableLine{LineNo: 1, Qty: 3, Paid: 1001, EarnedPoints: 11}, 2)
	if got.Amount != 667 || got.PointsReversed != 7 {
		t.Fatalf("two of three: %+v", got)
	}
}

func TestRefundLineBadInput(t *testing.T) {
	ok := RefundableLine{LineNo: 1, Qty: 2, Paid: 100}
	for _, tc := range []struct {
		l   RefundableLine
		qty int64
		err string
	}{
		{ok, 0, "must be 1 or more"},
		{ok, -1, "must be 1 or more"},
		{ok, 3, "only 2 of 2"},
		{RefundableLine{LineNo: 1}, 1, "quantity 0"},
		{RefundableLine{LineNo: 1, Qty: 2, Paid: 100, RefundedPaid: 101}, 1, "inconsistent"},
		{RefundableLine{LineNo: 1, Qty: 2, Paid: -1}, 1, "inconsistent"},
		{RefundableLine{LineNo: 1, Qty: 2, RefundedQty: 3}, 1, "inconsistent"},
	} {
		if _, err := RefundLine(tc.l, tc.qty); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v qty %d: err %v, want %q", tc.l, tc.qty, err, tc.err)
		}
	}
	// Huge figures do not overflow.
	got, err := RefundLine(RefundableLine{LineNo: 1, Qty: MaxQty, Paid: MaxAmount, EarnedPoints: MaxPoints}, MaxQty-1)
	if err != nil || got.Amount != MaxAmount/MaxQty*(MaxQty-1) || got.PointsReversed < 0 {
		t.Fatalf("huge: %+v %v", got, err)
	}
}

func TestTierAfterSale(t *testing.T) {
	p := DefaultProgram()
	for _, tc := range []struct {
		cur   string
		s     TierStats
		tier  string
		bonus int64
	}{
		{"silver", TierStats{SalesThisQuarter: 2, Spend365: 499999}, "silver", 0},
		{"silver", TierStats{SalesThisQuarter: 3}, "gold", 100},
		{"silver", TierStats{SalesThisQuarter: 1, Spend365: 500000}, "gold", 100},
		{"", TierStats{SalesThisQuarter: 3}, "gold", 100}, // no tier: the enrol tier
		{"silver", TierStats{Spend365: 1999999}, "gold", 100},
		{"silver", TierStats{Spend365: 2000000}, "diamond", 0}, // straight to the highest reached
		{"gold", TierStats{SalesThisQuarter: 50, Spend365: 1999999}, "gold", 0},
		{"gold", TierStats{Spend365: 2000000}, "diamond", 0},
		{"diamond", TierStats{SalesThisQuarter: 0, Spend365: 0}, "diamond", 0}, // never down
		{"vip", TierStats{Spend365: 1 << 40}, "vip", 0},                        // unknown: left to HQ
	} {
		tier, bonus, reason := p.TierAfterSale(tc.cur, tc.s)
		if tier != tc.tier || bonus != tc.bonus {
			t.Errorf("%q %+v → %q +%d, want %q +%d", tc.cur, tc.s, tier, bonus, tc.tier, tc.bonus)
		}
		if upgraded := tier != tc.cur && !(tc.cur == "" && tier == "silver"); upgraded != (reason != "") {
			t.Errorf("%q → %q: reason %q", tc.cur, tier, reason)
		}
	}
	p.Tiers[2].Upgrade.BonusPoints = 500
	if _, bonus, reason := p.TierAfterSale("silver", TierStats{Spend365: 2000000}); bonus != 500 || !strings.Contains(reason, "silver→diamond") {
		t.Errorf("bonus %d reason %q", bonus, reason)
	}
}

func TestTopUpBonus(t *testing.T) {
	p := DefaultProgram()
	for _, tc := range []struct{ amount, bonus int64 }{
		{-1, 0}, {0, 0}, {9999999, 0},
		{10000000, 500000}, {49999999, 500000},
		{50000000, 5000000}, {99999999, 5000000},
		{100000000, 12000000}, {MaxAmount, 12000000},
	} {
		if got := p.TopUpBonus(tc.amount); got != tc.bonus {
			t.Errorf("top-up %d: bonus %d, want %d", tc.amount, got, tc.bonus)
		}
	}
}

func TestLotExpiry(t *testing.T) {
	p := DefaultProgram()
	for _, tc := range []struct{ earned, want time.Time }{
		{local(2026, 6, 1, 12, 0, 0), local(2028, 1, 1, 0, 0, 0)},
		{local(2026, 1, 1, 0, 0, 0), local(2028, 1, 1, 0, 0, 0)},
		{local(2026, 12, 31, 23, 59, 59), local(2028, 1, 1, 0, 0, 0)},
		// 16:30 UTC on 31 December is already next year in Shanghai.
		{time.Date(2026, 12, 31, 16, 30, 0, 0, time.UTC), local(2029, 1, 1, 0, 0, 0)},
	} {
		got := p.LotExpiry(tc.earned)
		if !got.Equal(tc.want) || got.Location().String() != "Asia/Shanghai" {
			t.Errorf("earned %v: expires %v, want %v", tc.earned, got, tc.want)
		}
	}
}

func TestLifeCycle(t *testing.T) {
	p := DefaultProgram()
	now := local(2026, 9, 1, 10, 0, 0)
	for _, tc := range []struct {
		last time.Time
		want string
	}{
		{now, StateActive},
		{now.AddDate(0, 0, -59), StateActive},
		{local(2026, 7, 4, 23, 59, 59), StateActive}, // 59 local days, however late in the day
		{local(2026, 7, 3, 0, 0, 0), StateAtRisk},    // 60 local days
		{now.AddDate(0, 0, -60), StateAtRisk},
		{now.AddDate(0, 0, -179), StateAtRisk},
		{now.AddDate(0, 0, -180), StateDormant},
		{time.Time{}, StateDormant},
		{now.AddDate(0, 0, 3), StateActive}, // a clock ahead is not negative inactivity
	} {
		if got := p.LifeCycle(tc.last, now); got != tc.want {
			t.Errorf("last sale %v: %s, want %s", tc.last, got, tc.want)
		}
	}
	// Calendar days in the store's zone: 23:30 local on 2 July to 00:10 on 31 August is 60 days.
	if got := p.LifeCycle(time.Date(2026, 7, 2, 15, 30, 0, 0, time.UTC), local(2026, 8, 31, 0, 10, 0)); got != StateAtRisk {
		t.Errorf("local calendar days: %s", got)
	}
}

func TestWelcomeAndReferralCoupons(t *testing.T) {
	p := DefaultProgram()
	now := time.Date(2026, 3, 17, 17, 0, 0, 0, time.UTC) // 01:00 on 18 March in Shanghai
	c := p.WelcomeCoupon("m42", now)
	if c.ID != "welcome-m42" || c.Value != 1000 || c.Threshold != 0 || !c.ValidFrom.Equal(now) ||
		!c.ValidUntil.Equal(local(2026, 4, 17, 0, 0, 0)) {
		t.Fatalf("welcome coupon %+v", c)
	}
	b := Basket{Lines: []Line{line(1, "A", 1, 500)}, Coupon: &c}
	if q, err := p.Quote(b, &Member{ID: "m42"}, local(2026, 4, 16, 23, 59, 59)); err != nil || q.CouponValue != 475 { // ¥5 less 5 % silver
		t.Fatalf("welcome coupon on its 30th day: %v %+v", err, q)
	}
	if _, err := p.Quote(b, &Member{ID: "m42"}, local(2026, 4, 17, 0, 0, 0)); err == nil {
		t.Fatal("welcome coupon usable on day 31")
	}
	r := p.ReferralCoupon("m43", now)
	if r.ID != "referral-m43" || r.Value != 500 || !r.ValidUntil.Equal(local(2026, 4, 17, 0, 0, 0)) {
		t.Fatalf("referral coupon %+v", r)
	}
	// The template is copied: changing an issued coupon leaves the program alone.
	p.Welcome.SKUs = []string{"A"}
	c = p.WelcomeCoupon("m", now)
	c.SKUs[0] = "Z"
	if p.Welcome.SKUs[0] != "A" {
		t.Fatal("issued coupon shares SKUs with the program")
	}
}

func TestMaskMobile(t *testing.T) {
	for in, want := range map[string]string{
		"13812341234":    "138****1234",
		"+8613812341234": "+86*******1234",
		"12345678":       "123*5678",
		"1234567":        "*****67",
		"12":             "**",
		"":               "",
		"一二三四五六七八九十一":    "一二三****八九十一",
	} {
		if got := MaskMobile(in); got != want {
			t.Errorf("MaskMobile(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestYuan(t *testing.T) {
	for in, want := range map[int64]string{0: "¥0.00", 5: "¥0.05", 1234: "¥12.34", -5: "-¥0.05", -100: "-¥1.00",
		-9223372036854775808: "-¥92233720368547758.08"} {
		if got := yuan(in); got != want {
			t.Errorf("yuan(%d) = %q, want %q", in, got, want)
		}
	}
}

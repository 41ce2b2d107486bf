package loyalty

import (
	"errors"
	"time"
)

// ParseProgram reads and validates a program file.
func ParseProgram(src []byte) (*Program, error) {
	return nil, errors.New("loyalty: program parser not implemented yet")
}

// DefaultProgram is the embedded default program (the spec).
func DefaultProgram() *Program {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	return &Program{
		Version: 1, EffectiveFrom: time.Date(2000, 1, 1, 0, 0, 0, 0, loc), TimeZone: "Asia/Shanghai", loc: loc,
		Tiers: []Tier{
			{ID: "silver", NameZH: "银卡", NameEN: "Silver", DiscountBP: 500},
			{ID: "gold", NameZH: "金卡", NameEN: "Gold", DiscountBP: 1200, Upgrade: &UpgradeRule{SalesPerQuarter: 3, Spend365: 500000, BonusPoints: 100}},
			{ID: "diamond", NameZH: "钻石卡", NameEN: "Diamond", DiscountBP: 2000, Upgrade: &UpgradeRule{Spend365: 2000000}},
		},
		EnrolTier: "silver", FenPerPoint: 100,
		Multipliers: Multipliers{Birthday: Multiplier{Factor: 2}, BirthdayMonth: Multiplier{Factor: 2, Tiers: []string{"gold", "diamond"}},
			MemberDay: Multiplier{Factor: 2, DayOfMonth: 18}, OffSeason: Multiplier{Factor: 2, Weekday: time.Wednesday, Months: []time.Month{2, 3, 4}}},
		Redemption: Redemption{PointsPerYuan: 100, Step: 100, MaxShareBP: 5000, OfflineCapPerDay: 5000},
		Lots:       Lots{ExpireYearsAfter: 1},
		TopUp:      []TopUpStep{{10000000, 500000}, {50000000, 5000000}, {100000000, 12000000}},
		Welcome:    CouponTemplate{Name: "welcome", Value: 1000, ValidDays: 30},
		Referral:   Referral{ReferrerPoints: 50, NewMemberPoints: 50, Coupon: CouponTemplate{Name: "referral", Value: 500, ValidDays: 30}},
		Life:       LifeCycleRule{AtRiskDays: 60, DormantDays: 180},
	}
}

package loyalty

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Program is one version of the loyalty program: every number of the rules
// is a field here, read from the program file.
type Program struct {
	Version       int       `json:"version"`
	EffectiveFrom time.Time `json:"effective_from"`
	TimeZone      string    `json:"time_zone"`

	// Tiers from lowest to highest, in file order.
	Tiers []Tier `json:"tiers"`
	// EnrolTier is the tier a new member starts in (and a member with no tier
	// is priced at).
	EnrolTier string `json:"enrol_tier"`
	// FenPerPoint: one point per this many fen of earn base.
	FenPerPoint int64 `json:"fen_per_point"`

	Multipliers Multipliers    `json:"multipliers"`
	Redemption  Redemption     `json:"redemption"`
	Lots        Lots           `json:"lots"`
	TopUp       []TopUpStep    `json:"top_up_bonus"`
	Welcome     CouponTemplate `json:"welcome_coupon"`
	Referral    Referral       `json:"referral"`
	Life        LifeCycleRule  `json:"life_cycle"`
	// Messages are HQ's member reminders; a program without the section
	// sends none.
	Messages Messages `json:"messages"`

	loc *time.Location
}

// Tier is one membership tier.
type Tier struct {
	ID         string `json:"id"`
	NameZH     string `json:"name_zh"`
	NameEN     string `json:"name_en"`
	DiscountBP int64  `json:"discount_bp"` // 500 = 5 % off
	// Upgrade is how a member of a lower tier reaches this one; nil means
	// only HQ grants it.
	Upgrade *UpgradeRule `json:"upgrade,omitempty"`
}

// UpgradeRule: either condition (a zero one is off) upgrades.
type UpgradeRule struct {
	SalesPerQuarter int   `json:"sales_per_quarter"` // sales within one calendar quarter
	Spend365        int64 `json:"spend_365"`         // fen spent in the last 365 days
	BonusPoints     int64 `json:"bonus_points"`
}

// Multipliers of points earned; the highest that applies wins, they never
// multiply each other. A Factor of 0 means the multiplier is off.
type Multipliers struct {
	Birthday      Multiplier `json:"birthday"`
	BirthdayMonth Multiplier `json:"birthday_month"`
	MemberDay     Multiplier `json:"member_day"`
	OffSeason     Multiplier `json:"off_season"`
}

// Multiplier is one points multiplier and when it applies.
type Multiplier struct {
	Factor     int64        `json:"factor"`
	Tiers      []string     `json:"tiers,omitempty"`        // empty: every tier
	DayOfMonth int          `json:"day_of_month,omitempty"` // member day
	Weekday    time.Weekday `json:"weekday,omitempty"`      // off-season
	Months     []time.Month `json:"months,omitempty"`       // off-season
}

// Redemption of points as money.
type Redemption struct {
	PointsPerYuan    int64 `json:"points_per_yuan"`     // 100 points = 1 yuan
	Step             int64 `json:"step"`                // redeem in multiples of this
	MaxShareBP       int64 `json:"max_share_bp"`        // of the amount due after the coupon
	OfflineCapPerDay int64 `json:"offline_cap_per_day"` // points per member per day
}

// Lots is the points expiry rule.
type Lots struct {
	// ExpireYearsAfter: a lot earned in year Y expires at the end of year
	// Y+ExpireYearsAfter (local time).
	ExpireYearsAfter int `json:"expire_years_after"`
}

// TopUpStep is one row of the top-up bonus table.
type TopUpStep struct {
	Min   int64 `json:"min"`   // fen
	Bonus int64 `json:"bonus"` // fen
}

// Referral is what enrolling with a referrer's card gives.
type Referral struct {
	ReferrerPoints  int64          `json:"referrer_points"`
	NewMemberPoints int64          `json:"new_member_points"`
	Coupon          CouponTemplate `json:"coupon"`
}

// LifeCycleRule holds the life-cycle thresholds in days without a sale.
type LifeCycleRule struct {
	AtRiskDays  int `json:"at_risk_days"`
	DormantDays int `json:"dormant_days"`
}

// Location is the program's time zone; dates are evaluated there.
func (p *Program) Location() *time.Location {
	if p.loc == nil {
		if l, err := time.LoadLocation(p.TimeZone); err == nil {
			return l
		}
		return time.UTC
	}
	return p.loc
}

// Tier returns the tier with the given id.
func (p *Program) Tier(id string) (Tier, bool) {
	for _, t := range p.Tiers {
		if t.ID == id {
			return t, true
		}
	}
	return Tier{}, false
}

func (p *Program) tierRank(id string) int {
	for i, t := range p.Tiers {
		if t.ID == id {
			return i
		}
	}
	return -1
}

// Programs is a set of program versions.
type Programs []*Program

// At returns the version in force at t: the latest EffectiveFrom not after t
// (the higher version wins a tie).
func (ps Programs) At(t time.Time) (*Program, error) {
	var best *Program
	for _, p := range ps {
		if p == nil || p.EffectiveFrom.After(t) {
			continue
		}
		if best == nil || p.EffectiveFrom.After(best.EffectiveFrom) ||
			(p.EffectiveFrom.Equal(best.EffectiveFrom) && p.Version > best.Version) {
			best = p
		}
	}
	if best == nil {
		if len(ps) == 0 {
			return nil, errors.New("loyalty: no program loaded; load the default program or one from HQ")
		}
		return nil, fmt.Errorf("loyalty: no program in force at %s; the earliest starts %s",
			t.Format(time.RFC3339), ps.earliest().Format(time.RFC3339))
	}
	return best, nil
}

func (ps Programs) earliest() time.Time {
	var e time.Time
	for _, p := range ps {
		if p != nil && (e.IsZero() || p.EffectiveFrom.Before(e)) {
			e = p.EffectiveFrom
		}
	}
	return e
}

// Sorted returns the versions ordered by EffectiveFrom then Version.
func (ps Programs) Sorted() Programs {
	out := make(Programs, 0, len(ps))
	for _, p := range ps {
		if p != nil {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].EffectiveFrom.Equal(out[j].EffectiveFrom) {
			return out[i].EffectiveFrom.Before(out[j].EffectiveFrom)
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// TopUpBonus is the bonus for a top-up of amount fen: the highest row reached.
func (p *Program) TopUpBonus(amount int64) int64 {
	var bonus, best int64 = 0, -1
	for _, s := range p.TopUp {
		if amount >= s.Min && s.Min > best {
			best, bonus = s.Min, s.Bonus
		}
	}
	return bonus
}

// OfflineRedeemCapPerDay is the most points one member may redeem per local
// day while the till is offline.
func (p *Program) OfflineRedeemCapPerDay() int64 { return p.Redemption.OfflineCapPerDay }

// LotExpiry is the instant a lot earned at earnedAt expires: 00:00 local on
// 1 January after the end of year (earned year + ExpireYearsAfter). A lot is
// usable while now.Before(LotExpiry(earnedAt)); its last valid local day is
// 31 December of that year.
func (p *Program) LotExpiry(earnedAt time.Time) time.Time {
	loc := p.Location()
	y := earnedAt.In(loc).Year()
	return time.Date(y+p.Lots.ExpireYearsAfter+1, time.January, 1, 0, 0, 0, 0, loc)
}

// LifeCycle is "active", "at_risk" or "dormant" by whole local calendar days
// since lastSale. Pass the enrolment time for a member who never bought; a
// zero lastSale means no known activity at all and is "dormant".
func (p *Program) LifeCycle(lastSale, now time.Time) string {
	if lastSale.IsZero() {
		return StateDormant
	}
	d := p.daysBetween(lastSale, now)
	switch {
	case d >= p.Life.DormantDays:
		return StateDormant
	case d >= p.Life.AtRiskDays:
		return StateAtRisk
	}
	return StateActive
}

// daysBetween counts local calendar days from a to b (negative if b is earlier).
func (p *Program) daysBetween(a, b time.Time) int {
	loc := p.Location()
	a, b = a.In(loc), b.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 12, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 12, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours() / 24)
}

// Issue makes a coupon from the template, valid from the start of the local
// day of now for ValidDays local days (ValidUntil is exclusive: 00:00 local
// on the day after the last valid day).
func (t CouponTemplate) Issue(id string, now time.Time, loc *time.Location) Coupon {
	l := now.In(loc)
	start := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	return Coupon{
		ID: id, Name: t.Name, Threshold: t.Threshold, Value: t.Value,
		SKUs:      append([]string(nil), t.SKUs...),
		ValidFrom: now, ValidUntil: start.AddDate(0, 0, t.ValidDays),
	}
}

// WelcomeCoupon is the coupon a new member gets at enrolment. Its ID is
// "welcome-<memberID>", so issuing it twice names the same coupon.
func (p *Program) WelcomeCoupon(memberID string, now time.Time) Coupon {
	return p.Welcome.Issue("welcome-"+memberID, now, p.Location())
}

// ReferralBonus is what an enrolment with a referrer gives: points to the
// referrer, points and a coupon (see ReferralCoupon) to the new member.
func (p *Program) ReferralBonus() (referrerPoints, newMemberPoints int64, newMemberCoupon CouponTemplate) {
	return p.Referral.ReferrerPoints, p.Referral.NewMemberPoints, p.Referral.Coupon
}

// ReferralCoupon is the referral coupon issued to a new member, ID
// "referral-<memberID>".
func (p *Program) ReferralCoupon(memberID string, now time.Time) Coupon {
	return p.Referral.Coupon.Issue("referral-"+memberID, now, p.Location())
}

// MaskMobile shows the first 3 and last 4 digits of a mobile number
// (13812341234 → 138****1234). Shorter numbers keep only the last 2.
func MaskMobile(m string) string {
	r := []rune(m)
	n := len(r)
	switch {
	case n == 0:
		return ""
	case n >= 8:
		for i := 3; i < n-4; i++ {
			r[i] = '*'
		}
	case n > 2:
		for i := 0; i < n-2; i++ {
			r[i] = '*'
		}
	default:
		for i := range r {
			r[i] = '*'
		}
	}
	return string(r)
}

// InZone returns the program evaluated in another time zone: the store's own
// zone overrides the chain default the program was published with, because
// birthdays, member day and expiry are the store's local dates. "" returns p.
func (p *Program) InZone(tz string) (*Program, error) {
	if tz == "" || tz == p.TimeZone {
		return p, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %v (use an IANA name such as Asia/Shanghai)", tz, err)
	}
	q := *p
	q.TimeZone, q.loc = tz, loc
	return &q, nil
}

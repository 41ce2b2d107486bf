// Package loyalty is the pure pricing engine of the loyalty program: the
// program file, quoting a basket (tier discount, coupon, points redemption,
// points earned), refunds by line and quantity, tier upgrades, top-up bonus,
// points lot expiry and the member life cycle.
//
// It does no I/O and imports nothing else of posagent, so the till ledger and
// HQ price a sale the same way. Money is int64 fen, points are int64, and no
// float is used anywhere.
package loyalty

import "time"

// Line is one basket line as the POS sends it.
type Line struct {
	LineNo       int    `json:"line_no"`
	SKU          string `json:"sku"`
	Qty          int64  `json:"qty"`
	UnitPrice    int64  `json:"unit_price"` // fen
	Discountable bool   `json:"discountable"`
	EarnsPoints  bool   `json:"earns_points"`
}

// Member is what pricing needs to know about a member.
type Member struct {
	ID       string `json:"id"`
	Tier     string `json:"tier"`     // empty: the program's enrolment tier
	Birthday string `json:"birthday"` // "MM-DD" or "YYYY-MM-DD"; empty: unknown
	Points   int64  `json:"points"`   // available for redemption
}

// Coupon is one coupon offered for a sale. Threshold 0 means no threshold.
// ValidUntil is exclusive; a zero ValidFrom or ValidUntil is unbounded.
type Coupon struct {
	ID         string    `json:"id"`
	Name       string    `json:"name,omitempty"`
	Threshold  int64     `json:"threshold"` // 满X: minimum net of covered lines, fen
	Value      int64     `json:"value"`     // 减Y, fen
	SKUs       []string  `json:"skus,omitempty"`
	ValidFrom  time.Time `json:"valid_from"`
	ValidUntil time.Time `json:"valid_until"`
}

// CouponTemplate describes coupons the program issues (welcome, referral).
type CouponTemplate struct {
	Name      string   `json:"name"`
	Threshold int64    `json:"threshold"`
	Value     int64    `json:"value"`
	SKUs      []string `json:"skus,omitempty"`
	ValidDays int      `json:"valid_days"`
}

// Basket is a sale to price: lines, at most one coupon and the points the
// member asks to redeem.
type Basket struct {
	Lines        []Line  `json:"lines"`
	Coupon       *Coupon `json:"coupon,omitempty"`
	RedeemPoints int64   `json:"redeem_points"`
}

// QuoteLine is one priced line. Net = Gross − Discount;
// Paid = Net − CouponShare − RedeemShare.
type QuoteLine struct {
	Line
	Gross        int64       `json:"gross"`
	Discount     int64       `json:"discount"`
	Net          int64       `json:"net"`
	CouponShare  int64       `json:"coupon_share"`
	RedeemShare  int64       `json:"redeem_share"`
	RedeemPoints int64       `json:"redeem_points"`
	Paid         int64       `json:"paid"`
	EarnBase     int64       `json:"earn_base"`
	EarnedPoints int64       `json:"earned_points"`
	Reasons      LineReasons `json:"reasons"` // text only when read: see LineReasons
}

// Quote is a priced basket with the reason for every number.
type Quote struct {
	ProgramVersion int         `json:"program_version"`
	Tier           string      `json:"tier"` // empty for a non-member
	Lines          []QuoteLine `json:"lines"`
	Gross          int64       `json:"gross"`
	Discount       int64       `json:"discount"`
	Net            int64       `json:"net"`
	CouponValue    int64       `json:"coupon_value"`
	RedeemPoints   int64       `json:"redeem_points"`
	RedeemValue    int64       `json:"redeem_value"`
	Due            int64       `json:"due"`
	EarnBase       int64       `json:"earn_base"`
	Multiplier     int64       `json:"multiplier"`
	PointsEarned   int64       `json:"points_earned"`
	Reasons        []string    `json:"reasons"`
}

// RefundableLine is a committed sale line with what earlier refunds already
// took from it.
type RefundableLine struct {
	LineNo         int   `json:"line_no"`
	Qty            int64 `json:"qty"`
	Paid           int64 `json:"paid"`
	RedeemPoints   int64 `json:"redeem_points"`
	EarnedPoints   int64 `json:"earned_points"`
	RefundedQty    int64 `json:"refunded_qty"`
	RefundedPaid   int64 `json:"refunded_paid"`
	RefundedRedeem int64 `json:"refunded_redeem"`
	RefundedEarned int64 `json:"refunded_earned"`
}

// RefundPart is what refunding some units of a line gives back and takes back.
type RefundPart struct {
	LineNo         int   `json:"line_no"`
	Qty            int64 `json:"qty"`
	Amount         int64 `json:"amount"`          // money returned, fen
	PointsReversed int64 `json:"points_reversed"` // earned points taken back
	PointsRestored int64 `json:"points_restored"` // redeemed points given back
}

// TierStats are a member's figures including the sale just committed.
type TierStats struct {
	SalesThisQuarter int   `json:"sales_this_quarter"`
	Spend365         int64 `json:"spend_365"` // fen, last 365 days
}

// Life-cycle states returned by Program.LifeCycle.
const (
	StateActive  = "active"
	StateAtRisk  = "at_risk"
	StateDormant = "dormant"
)

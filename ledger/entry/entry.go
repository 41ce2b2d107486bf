// Package entry defines the ledger entry: the one record type the till writes,
// the sync client uploads and HQ stores. Till and HQ share this definition so a
// sale means the same thing on both sides of the wire.
//
// Money is integer minor units (fen), points are integers. Times are kept in
// UTC (At) and as the store-local wall clock with its offset (Local), so HQ can
// report by store day without knowing every store's zone rules.
package entry

import (
	"fmt"
	"time"
)

// Kind names what an entry records.
type Kind string

const (
	KindSale          Kind = "sale"           // a committed sale (Sale set)
	KindRefund        Kind = "refund"         // a partial or full refund of a sale (Refund set)
	KindVoid          Kind = "void"           // a sale voided before the shift closed (Void set)
	KindTopUp         Kind = "topup"          // stored value bought (TopUp set)
	KindEnrol         Kind = "enrol"          // a member enrolled at the till (Enrol set)
	KindCouponIssued  Kind = "coupon_issued"  // a coupon given to a member (Coupon set)
	KindPointsAdjust  Kind = "points_adjust"  // bonus points (tier upgrade, referral) or a correction (Points set)
	KindPointsExpired Kind = "points_expired" // a lot written off at year end (Points set)
	KindTierChange    Kind = "tier_change"    // a member moved tier (Tier set)
)

// Entry is one append-only ledger record. Exactly one of the payload pointers
// matching Kind is set.
type Entry struct {
	Store string `json:"store"`
	Till  string `json:"till"`
	// Seq is the per-till gapless sequence number, assigned in the same
	// transaction that writes the entry. (Store, Till, Seq) identifies an entry
	// everywhere.
	Seq  uint64 `json:"seq"`
	Kind Kind   `json:"kind"`
	// Key is the idempotency key within (store, till, kind family): the POS
	// receipt id for sales, the refund id for refunds, and so on.
	Key      string `json:"key,omitempty"`
	MemberID string `json:"member_id,omitempty"`
	Cashier  string `json:"cashier,omitempty"`
	// Approver is the supervisor who approved an action the cashier may
	// not take alone (a large top-up, a void, a refund without receipt);
	// empty when none was needed. Entries written before it existed lack it.
	Approver string `json:"approver,omitempty"`
	// At is the commit time in UTC; Local is the same instant as the store's
	// wall clock, RFC 3339 with offset.
	At             time.Time `json:"at"`
	Local          string    `json:"local"`
	ProgramVersion int       `json:"program_version,omitempty"`

	// PointsDelta and StoredValueDelta are the entry's net effect on the
	// member's balances, so totals can be summed without interpreting payloads.
	PointsDelta      int64 `json:"points_delta"`
	StoredValueDelta int64 `json:"stored_value_delta"`

	Sale   *Sale         `json:"sale,omitempty"`
	Refund *Refund       `json:"refund,omitempty"`
	Void   *Void         `json:"void,omitempty"`
	TopUp  *TopUp        `json:"topup,omitempty"`
	Enrol  *Enrol        `json:"enrol,omitempty"`
	Coupon *CouponIssued `json:"coupon,omitempty"`
	Points *PointsChange `json:"points,omitempty"`
	Tier   *TierChange   `json:"tier,omitempty"`
}

// ID is the entry's identity across till and HQ.
func (e *Entry) ID() string { return fmt.Sprintf("%s/%s/%d", e.Store, e.Till, e.Seq) }

// SaleLine is one priced line as committed. Shares are this line's part of
// the sale-level amounts, allocated by largest remainder so they sum exactly.
type SaleLine struct {
	LineNo       int    `json:"line_no"`
	SKU          string `json:"sku"`
	Qty          int64  `json:"qty"`
	UnitPrice    int64  `json:"unit_price"`
	Discountable bool   `json:"discountable"`
	EarnsPoints  bool   `json:"earns_points"`
	Gross        int64  `json:"gross"`
	Discount     int64  `json:"discount"`      // tier discount
	Net          int64  `json:"net"`           // gross - discount
	CouponShare  int64  `json:"coupon_share"`  // fen of the coupon on this line
	RedeemShare  int64  `json:"redeem_share"`  // fen of redeemed points on this line
	RedeemPoints int64  `json:"redeem_points"` // points redeemed on this line
	Paid         int64  `json:"paid"`          // net - coupon share - redeem share
	EarnedPoints int64  `json:"earned_points"` // this line's share of points earned
}

// LotUse records points taken from one lot (FIFO) by a redemption.
type LotUse struct {
	Lot    string `json:"lot"` // entry ID of the entry that created the lot
	Points int64  `json:"points"`
}

// Sale is a committed sale.
type Sale struct {
	ReceiptID     string     `json:"receipt_id"`
	Tier          string     `json:"tier,omitempty"` // tier the sale was priced at
	Lines         []SaleLine `json:"lines"`
	Gross         int64      `json:"gross"`
	Discount      int64      `json:"discount"`
	CouponID      string     `json:"coupon_id,omitempty"`
	CouponValue   int64      `json:"coupon_value"`
	RedeemPoints  int64      `json:"redeem_points"`
	RedeemValue   int64      `json:"redeem_value"`
	Due           int64      `json:"due"`               // what the customer pays
	StoredValue   int64      `json:"stored_value_paid"` // part of Due paid from stored value
	EarnBase      int64      `json:"earn_base"`
	Multiplier    int64      `json:"multiplier"`
	PointsEarned  int64      `json:"points_earned"`
	LotsUsed      []LotUse   `json:"lots_used,omitempty"`
	LotExpiresAt  string     `json:"lot_expires_at,omitempty"` // local date YYYY-MM-DD, last valid day
	Reasons       []string   `json:"reasons,omitempty"`
	OfflineRedeem bool       `json:"offline_redeem,omitempty"`
}

// RefundLine names a quantity of a sale line given back, with what it reverses.
type RefundLine struct {
	LineNo         int   `json:"line_no"`
	Qty            int64 `json:"qty"`
	Amount         int64 `json:"amount"`          // money returned for this part (its Paid share)
	PointsReversed int64 `json:"points_reversed"` // earned points taken back
	PointsRestored int64 `json:"points_restored"` // redeemed points given back
}

// Refund reverses part or all of a sale exactly.
type Refund struct {
	RefundID       string       `json:"refund_id"`
	SaleKey        string       `json:"sale_key"`   // receipt id of the original sale
	SaleEntry      string       `json:"sale_entry"` // entry ID of the original sale
	Lines          []RefundLine `json:"lines"`
	Full           bool         `json:"full"`
	Amount         int64        `json:"amount"`
	StoredValue    int64        `json:"stored_value_returned"`
	PointsReversed int64        `json:"points_reversed"`
	PointsRestored int64        `json:"points_restored"`
	CouponRestored string       `json:"coupon_restored,omitempty"`
	NegativeAfter  bool         `json:"negative_after,omitempty"` // balance went below zero
}

// Void cancels a whole sale; it reverses it like a full refund.
type Void struct {
	SaleKey        string `json:"sale_key"`
	SaleEntry      string `json:"sale_entry"`
	Reason         string `json:"reason,omitempty"`
	PointsReversed int64  `json:"points_reversed"`
	PointsRestored int64  `json:"points_restored"`
	StoredValue    int64  `json:"stored_value_returned"`
	CouponRestored string `json:"coupon_restored,omitempty"`
}

// TopUp is stored value bought, with the program's bonus.
type TopUp struct {
	TopUpID string `json:"topup_id"`
	Amount  int64  `json:"amount"`
	Bonus   int64  `json:"bonus"`
}

// Enrol records a new member. Card tokens are keyed hashes, never card numbers.
type Enrol struct {
	Member     Member `json:"member"`
	ReferrerID string `json:"referrer_id,omitempty"`
}

// CouponIssued gives a coupon to a member.
type CouponIssued struct {
	Coupon MemberCoupon `json:"coupon"`
	Reason string       `json:"reason"` // welcome, referral, recall, restored, hq
}

// PointsChange is bonus points, a correction or an expiry write-off.
type PointsChange struct {
	Reason   string   `json:"reason"` // tier_upgrade, referral, referred, expiry, correction
	Points   int64    `json:"points"` // signed
	LotsUsed []LotUse `json:"lots_used,omitempty"`
	Lot      string   `json:"lot,omitempty"` // the lot expired, for expiry
}

// TierChange moves a member between tiers.
type TierChange struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// Member is the minimum member data the program names.
type Member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Mobile     string   `json:"mobile,omitempty"`
	Birthday   string   `json:"birthday,omitempty"` // MM-DD or YYYY-MM-DD
	Tier       string   `json:"tier"`
	ReferrerID string   `json:"referrer_id,omitempty"`
	CardTokens []string `json:"card_tokens,omitempty"` // keyed hashes
	EnrolledAt string   `json:"enrolled_at,omitempty"` // RFC 3339
}

// MemberCoupon is a coupon held by a member.
type MemberCoupon struct {
	ID         string   `json:"id"`
	MemberID   string   `json:"member_id"`
	Name       string   `json:"name"`
	Threshold  int64    `json:"threshold"` // 满X: minimum net of covered lines, 0 for none
	Value      int64    `json:"value"`     // 减Y
	SKUs       []string `json:"skus,omitempty"`
	ValidFrom  string   `json:"valid_from"`  // RFC 3339
	ValidUntil string   `json:"valid_until"` // RFC 3339
}

package entry

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 3, 18, 2, 30, 0, 123, time.UTC)

func base(kind Kind, seq uint64) Entry {
	return Entry{Store: "S001", Till: "T1", Seq: seq, Kind: kind, Key: "R-20260318-0042", MemberID: "S001-T1-1", Cashier: "c07",
		At: at, Local: at.In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339), ProgramVersion: 1}
}

// validEntries is one entry of every kind, as the ledger writes them.
func validEntries() []Entry {
	sale := base(KindSale, 1)
	sale.Sale = &Sale{ReceiptID: "R-20260318-0042", Tier: "silver", Gross: 3980, Due: 3480, RedeemPoints: 500, RedeemValue: 500,
		EarnBase: 3480, Multiplier: 1, PointsEarned: 34, StoredValue: 1000, LotExpiresAt: "2028-12-31",
		Lines:    []SaleLine{{LineNo: 1, SKU: "SKU1", Qty: 2, UnitPrice: 1990, Gross: 3980, Net: 3980, RedeemShare: 500, RedeemPoints: 500, Paid: 3480, EarnedPoints: 34}},
		LotsUsed: []LotUse{{Lot: "S001/T1/7", Points: 500}}, Reasons: []string{"gross ¥39.80"}}
	sale.PointsDelta, sale.StoredValueDelta = 34-500, -1000
	anon := base(KindSale, 2)
	anon.MemberID = ""
	anon.Sale = &Sale{ReceiptID: "R2", Gross: 100, Due: 100, Lines: []SaleLine{{LineNo: 1, SKU: "x", Qty: 1, UnitPrice: 100, Gross: 100, Net: 100, Paid: 100}}}
	refund := base(KindRefund, 3)
	refund.Key = "RF-0007"
	refund.Refund = &Refund{RefundID: "RF-0007", SaleKey: "R-20260318-0042", SaleEntry: "S001/T2/1", Amount: 1740, StoredValue: 500,
		PointsReversed: 17, PointsRestored: 250, Lines: []RefundLine{{LineNo: 1, Qty: 1, Amount: 1740, PointsReversed: 17, PointsRestored: 250}}}
	refund.PointsDelta, refund.StoredValueDelta = 250-17, 500
	void := base(KindVoid, 4)
	void.Void = &Void{SaleKey: "R-20260318-0042", SaleEntry: "S001/T1/1", Reason: "wrong member", PointsReversed: 34, PointsRestored: 500, StoredValue: 1000}
	void.PointsDelta, void.StoredValueDelta = 500-34, 1000
	topup := base(KindTopUp, 5)
	topup.TopUp = &TopUp{TopUpID: "TU-1", Amount: 50000, Bonus: 5000}
	topup.StoredValueDelta = 55000
	enrol := base(KindEnrol, 6)
	enrol.Enrol = &Enrol{Member: Member{ID: "S001-T1-1", Name: "张三", Mobile: "13812341234", Tier: "silver", CardTokens: []string{"abc"}, EnrolledAt: at.Format(time.RFC3339)}}
	coupon := base(KindCouponIssued, 7)
	coupon.Coupon = &CouponIssued{Reason: "welcome", Coupon: MemberCoupon{ID: "welcome-S001-T1-1", MemberID: "S001-T1-1", Name: "新人礼", Threshold: 10000, Value: 2000,
		ValidFrom: at.Format(time.RFC3339), ValidUntil: at.AddDate(0, 1, 0).Format(time.RFC3339)}}
	adjust := base(KindPointsAdjust, 8)
	adjust.Points = &PointsChange{Reason: "tier_upgrade", Points: 1000}
	adjust.PointsDelta = 1000
	expired := base(KindPointsExpired, 9)
	expired.Key = ""
	expired.Points = &PointsChange{Reason: "expiry", Points: -300, Lot: "S001/T1/1", LotsUsed: []LotUse{{Lot: "S001/T1/1", Points: 300}}}
	expired.PointsDelta = -300
	tier := base(KindTierChange, 10)
	tier.Tier = &TierChange{From: "silver", To: "gold", Reason: "spend"}
	return []Entry{sale, anon, refund, void, topup, enrol, coupon, adjust, expired, tier}
}

func TestValidateAcceptsWhatTheLedgerWrites(t *testing.T) {
	for _, e := range validEntries() {
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", e.Kind, err)
		}
	}
	// The largest values the pricing engine produces pass.
	e := validEntries()[0]
	e.Sale.Gross, e.Sale.Due, e.Sale.StoredValue, e.Sale.PointsEarned, e.Sale.RedeemPoints = MaxAmount, MaxAmount, MaxAmount, MaxPoints, MaxPoints
	e.PointsDelta, e.StoredValueDelta = 0, -MaxAmount
	if err := e.Validate(); err != nil {
		t.Errorf("largest sale: %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		kind  int // index into validEntries
		field string
		id    bool
		edit  func(e *Entry)
	}{
		{"till with NUL", 0, "till", true, func(e *Entry) { e.Till = "T1\x00x" }},
		{"till with RLO", 0, "till", true, func(e *Entry) { e.Till = "T1\u202e" }},
		{"store too long", 0, "store", true, func(e *Entry) { e.Store = strings.Repeat("s", MaxIDLen+1) }},
		{"store starting with a dot", 0, "store", true, func(e *Entry) { e.Store = ".S" }},
		{"cashier with a space", 0, "cashier", true, func(e *Entry) { e.Cashier = "c 07" }},
		{"approver with a space", 0, "approver", true, func(e *Entry) { e.Cashier, e.Approver = "c07", "s 01" }},
		{"approver without cashier", 0, "approver", false, func(e *Entry) { e.Cashier, e.Approver = "", "s01" }},
		{"receipt with RLO", 0, "sale.receipt_id", true, func(e *Entry) { e.Sale.ReceiptID = "R\u202e1" }},
		{"key too long", 0, "key", true, func(e *Entry) { e.Key = strings.Repeat("k", MaxKeyLen+1) }},
		{"refund id", 2, "refund.refund_id", true, func(e *Entry) { e.Refund.RefundID = "RF/1" }},
		{"sale entry of another store", 2, "refund.sale_entry", true, func(e *Entry) { e.Refund.SaleEntry = "S002/T1/1" }},
		{"sale entry without seq", 3, "void.sale_entry", true, func(e *Entry) { e.Void.SaleEntry = "S001/T1/x" }},
		{"topup id", 4, "topup.topup_id", true, func(e *Entry) { e.TopUp.TopUpID = "" }},
		{"seq zero", 0, "seq", false, func(e *Entry) { e.Seq = 0 }},
		{"seq beyond int64", 0, "seq", false, func(e *Entry) { e.Seq = math.MaxInt64 + 1 }},
		{"no time", 0, "at", false, func(e *Entry) { e.At = time.Time{} }},
		{"time after 2200", 0, "at", false, func(e *Entry) { e.At = time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC); e.Local = "" }},
		{"local another instant", 0, "local", false, func(e *Entry) { e.Local = "2026-03-18T10:31:00+08:00" }},
		{"unknown kind", 0, "kind", false, func(e *Entry) { e.Kind = "gift" }},
		{"two payloads", 0, "kind", false, func(e *Entry) { e.TopUp = &TopUp{} }},
		{"points delta overflowing", 7, "points.points", false, func(e *Entry) { e.Points.Points, e.PointsDelta = math.MaxInt64, math.MaxInt64 }},
		{"points delta not the payload's", 0, "points_delta", false, func(e *Entry) { e.PointsDelta = math.MaxInt64 }},
		{"stored value delta not the payload's", 0, "stored_value_delta", false, func(e *Entry) { e.StoredValueDelta = 1 }},
		{"deltas without member", 1, "points_delta", false, func(e *Entry) { e.PointsDelta = 5 }},
		{"negative due", 0, "sale.due", false, func(e *Entry) { e.Sale.Due = -1 }},
		{"amount over the sale maximum", 0, "sale.gross", false, func(e *Entry) { e.Sale.Gross = MaxAmount + 1 }},
		{"points earned over the maximum", 0, "sale.points_earned", false, func(e *Entry) {
			e.Sale.PointsEarned = MaxPoints + 1
			e.PointsDelta = e.Sale.PointsEarned - e.Sale.RedeemPoints
		}},
		{"no lines", 0, "sale.lines", false, func(e *Entry) { e.Sale.Lines = nil }},
		{"too many lines", 0, "sale.lines", false, func(e *Entry) { e.Sale.Lines = make([]SaleLine, MaxLines+1) }},
		{"zero quantity", 0, "sale.lines[0].qty", false, func(e *Entry) { e.Sale.Lines[0].Qty = 0 }},
		{"negative lot use", 0, "sale.lots_used[0].points", false, func(e *Entry) { e.Sale.LotsUsed[0].Points = -1 }},
		{"NUL in a SKU", 0, "sale.lines[0].sku", false, func(e *Entry) { e.Sale.Lines[0].SKU = "a\x00" }},
		{"huge reason", 0, "sale.reasons[0]", false, func(e *Entry) { e.Sale.Reasons[0] = strings.Repeat("x", MaxTextLen+1) }},
		{"negative refund", 2, "refund.amount", false, func(e *Entry) { e.Refund.Amount = -1 }},
		{"void restoring too much", 3, "void.points_restored", false, func(e *Entry) {
			e.Void.PointsRestored = MaxPoints + 1
			e.PointsDelta = e.Void.PointsRestored - e.Void.PointsReversed
		}},
		{"top-up of nothing", 4, "topup.amount", false, func(e *Entry) { e.TopUp.Amount, e.StoredValueDelta = 0, e.TopUp.Bonus }},
		{"top-up without member", 4, "member_id", false, func(e *Entry) { e.MemberID = "" }},
		{"enrol of another member", 5, "enrol.member.id", false, func(e *Entry) { e.Enrol.Member.ID = "M9" }},
		{"member id with NUL", 5, "member_id", false, func(e *Entry) { e.MemberID, e.Enrol.Member.ID = "M\x00", "M\x00" }},
		{"coupon valid_until", 6, "coupon.coupon.valid_until", false, func(e *Entry) { e.Coupon.Coupon.ValidUntil = "soon" }},
		{"expiry giving points", 8, "points.points", false, func(e *Entry) { e.Points.Points, e.PointsDelta = 300, 300 }},
		{"program version", 0, "program_version", false, func(e *Entry) { e.ProgramVersion = -1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := validEntries()[c.kind]
			c.edit(&e)
			err := e.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *FieldError", err)
			}
			if fe.Field != c.field || fe.ID != c.id {
				t.Fatalf("Validate = %v (field %q, id %v), want field %q, id %v", err, fe.Field, fe.ID, c.field, c.id)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"S001", "T1", "a", "store.east-1_b", strings.Repeat("x", MaxIDLen)} {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", "T1\x00", "T\u202e1", "-T", ".T", "_T", "T 1", "T/1", "收银1", strings.Repeat("x", MaxIDLen+1)} {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
	if !ValidKey(strings.Repeat("r", MaxKeyLen)) || ValidKey(strings.Repeat("r", MaxKeyLen+1)) {
		t.Error("ValidKey does not bound at MaxKeyLen")
	}
}

func TestParseID(t *testing.T) {
	s, tl, seq, err := ParseID("S001/T1/42")
	if err != nil || s != "S001" || tl != "T1" || seq != 42 {
		t.Fatalf("ParseID = %q %q %d %v", s, tl, seq, err)
	}
	for _, bad := range []string{"", "S/T", "S/T/0", "S/T/01", "S/T/-1", "S/T/9223372036854775808", "S\x00/T/1", "S/T/1/2"} {
		if _, _, _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

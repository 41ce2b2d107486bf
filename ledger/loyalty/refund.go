package loyalty

import (
	"fmt"
	"math/bits"
)

// RefundLine computes what refunding qty more units of a sale line gives back
// (money, redeemed points) and takes back (earned points).
//
// Each figure is prorated cumulatively and rounded down:
// floor(total × (already refunded qty + qty) / line qty) − already refunded,
// so the last unit refunded takes whatever is left and all refunds of a line
// add up exactly to its totals.
func RefundLine(l RefundableLine, qty int64) (RefundPart, error) {
	if qty <= 0 {
		return RefundPart{}, fmt.Errorf("loyalty: refund of line %d: quantity %d must be 1 or more", l.LineNo, qty)
	}
	if l.Qty <= 0 {
		return RefundPart{}, fmt.Errorf("loyalty: refund of line %d: the sale line has quantity %d; check the original sale", l.LineNo, l.Qty)
	}
	for _, v := range []struct {
		name          string
		total, before int64
	}{{"qty", l.Qty, l.RefundedQty}, {"paid", l.Paid, l.RefundedPaid},
		{"redeemed points", l.RedeemPoints, l.RefundedRedeem}, {"earned points", l.EarnedPoints, l.RefundedEarned}} {
		if v.total < 0 || v.before < 0 || v.before > v.total {
			return RefundPart{}, fmt.Errorf("loyalty: refund of line %d: %s already refunded (%d) is outside 0..%d; the sale's refund history is inconsistent",
				l.LineNo, v.name, v.before, v.total)
		}
	}
	left := l.Qty - l.RefundedQty
	if qty > left {
		return RefundPart{}, fmt.Errorf("loyalty: refund of line %d: %d units asked but only %d of %d are left to refund",
			l.LineNo, qty, left, l.Qty)
	}
	after := l.RefundedQty + qty
	part := func(total, before int64) int64 {
		if after == l.Qty {
			return total - before
		}
		v := mulDiv(total, after, l.Qty) - before
		if v < 0 { // earlier refunds computed another way took more
			return 0
		}
		return v
	}
	return RefundPart{
		LineNo:         l.LineNo,
		Qty:            qty,
		Amount:         part(l.Paid, l.RefundedPaid),
		PointsReversed: part(l.EarnedPoints, l.RefundedEarned),
		PointsRestored: part(l.RedeemPoints, l.RefundedRedeem),
	}, nil
}

// mulDiv is floor(a×b/c) for non-negative a, b and positive c with a×b/c
// fitting int64 (true when b <= c); the product is 128-bit so it never
// overflows.
func mulDiv(a, b, c int64) int64 {
	q, _ := mulDivRem(uint64(a), uint64(b), uint64(c))
	return int64(q)
}

// mulDivRem returns floor(a×b/c) and the remainder; the caller guarantees the
// quotient fits 64 bits (a×b/c < 2^64).
func mulDivRem(a, b, c uint64) (q, r uint64) {
	hi, lo := bits.Mul64(a, b)
	return bits.Div64(hi, lo, c)
}

package ledger

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
)

func holdsCoupon(t *testing.T, l *Ledger, member, id string) bool {
	t.Helper()
	v, err := l.Member(member)
	require.NoError(t, err)
	for _, c := range v.Coupons {
		if c.ID == id {
			return true
		}
	}
	return false
}

// A coupon that takes nothing off (a ¥0 basket) is not used up by the sale:
// the sale does not name it, the member keeps it, and reversing that sale
// gives nothing back. Used for real afterwards, it is consumed and a full
// refund restores it.
func TestCouponTakingNothingStaysAvailable(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	welcome := "welcome-M1"
	require.True(t, holdsCoupon(t, l, "M1", welcome))

	gift := []loyalty.Line{line(1, 1, 0)}
	q, err := l.Quote(ctx, SaleRequest{ReceiptID: "Q0", MemberID: "M1", CouponID: welcome, Lines: gift})
	require.NoError(t, err)
	require.Zero(t, q.CouponValue)
	require.Contains(t, strings.Join(q.Reasons, "|"), "not applied")

	s0 := sale(t, l, SaleRequest{ReceiptID: "S0", MemberID: "M1", CouponID: welcome, Lines: gift})
	require.Zero(t, s0.Sale.CouponValue)
	require.Empty(t, s0.Sale.CouponID, "a sale the coupon took nothing off does not use it")
	require.True(t, holdsCoupon(t, l, "M1", welcome), "the coupon is still available after a ¥0 sale")
	again := sale(t, l, SaleRequest{ReceiptID: "S0", MemberID: "M1", CouponID: welcome, Lines: gift})
	require.Equal(t, s0.Seq, again.Seq, "the same sale again is the same entry")

	// Reversing the ¥0 sale restores no coupon: it never used one.
	f0, err := l.Refund(ctx, RefundRequest{RefundID: "F0", ReceiptID: "S0", Full: true})
	require.NoError(t, err)
	require.Empty(t, f0.Refund.CouponRestored)
	require.True(t, holdsCoupon(t, l, "M1", welcome))

	// The coupon still works on a real sale, is used by it, and comes back on a full refund.
	s1 := sale(t, l, SaleRequest{ReceiptID: "S1", MemberID: "M1", CouponID: welcome, Lines: []loyalty.Line{line(1, 1, 3000)}})
	require.Equal(t, int64(1000), s1.Sale.CouponValue)
	require.Equal(t, welcome, s1.Sale.CouponID)
	require.False(t, holdsCoupon(t, l, "M1", welcome))
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "S2", MemberID: "M1", CouponID: welcome, Lines: gift})
	require.ErrorIs(t, err, ErrInvalid, "a used coupon is refused even where it would take nothing off")
	f1, err := l.Refund(ctx, RefundRequest{RefundID: "F1", ReceiptID: "S1", Full: true})
	require.NoError(t, err)
	require.Equal(t, welcome, f1.Refund.CouponRestored)
	require.True(t, holdsCoupon(t, l, "M1", welcome))

	// A void of a ¥0 sale with the coupon restores nothing either.
	sale(t, l, SaleRequest{ReceiptID: "S3", MemberID: "M1", CouponID: welcome, Lines: gift})
	vd, err := l.Void(ctx, VoidRequest{ReceiptID: "S3"})
	require.NoError(t, err)
	require.Empty(t, vd.Void.CouponRestored)
	require.True(t, holdsCoupon(t, l, "M1", welcome))
	verifyOK(t, l)
}

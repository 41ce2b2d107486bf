package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCouponErrors: a coupon the member does not hold (an unknown id, or
// another member's coupon) and a coupon already used each get their own
// code and a message about the coupon, never the member-not-found text.
func TestCouponErrors(t *testing.T) {
	f := newFixture(t, nil)
	var a, b EnrolResponse
	f.ok(t, "POST", "/v1/members", map[string]any{"enrol_id": "E1", "name": "李雷", "mobile": "13812341234"}, &a)
	f.ok(t, "POST", "/v1/members", map[string]any{"enrol_id": "E2", "name": "韩梅梅", "mobile": "13812345678"}, &b)
	require.NotEmpty(t, a.Member.Coupons, "welcome coupon")
	require.NotEmpty(t, b.Member.Coupons, "welcome coupon")
	idA, couponA := a.Member.Member.ID, a.Member.Coupons[0].ID
	couponB := b.Member.Coupons[0].ID

	sale := func(receipt, coupon string) map[string]any {
		return map[string]any{"receipt_id": receipt, "member_id": idA, "coupon_id": coupon,
			"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 50000}}}
	}
	notMember := func(e Error) {
		t.Helper()
		require.NotContains(t, e.Message, "enrol", "a coupon error is not a missing member")
		require.NotContains(t, e.MessageZH, "入会")
		require.Contains(t, e.Message, "coupon")
		require.Contains(t, e.MessageZH, "券")
	}

	for _, tc := range []struct{ name, coupon string }{{"unknown", "no-such-coupon"}, {"another member's", couponB}} {
		for _, path := range []string{"/v1/quote", "/v1/sales"} {
			code, raw := f.call(t, "POST", path, apiToken, sale("R-"+tc.name, tc.coupon))
			e := errCode(t, raw)
			require.Equal(t, http.StatusNotFound, code, "%s coupon on %s: %s", tc.name, path, raw)
			require.Equal(t, "coupon_not_found", e.Code, "%s coupon on %s", tc.name, path)
			notMember(e)
			require.True(t, strings.Contains(e.Message, "this member"), e.Message)
		}
	}

	f.ok(t, "POST", "/v1/sales", sale("R1", couponA), nil)
	for _, path := range []string{"/v1/quote", "/v1/sales"} {
		code, raw := f.call(t, "POST", path, apiToken, sale("R2", couponA))
		e := errCode(t, raw)
		require.Equal(t, http.StatusUnprocessableEntity, code, "%s: %s", path, raw)
		require.Equal(t, "coupon_used", e.Code, path)
		notMember(e)
		require.Contains(t, e.Message, "already used")
	}

	// A missing member is still the member's error.
	code, raw := f.call(t, "POST", "/v1/sales", apiToken, map[string]any{"receipt_id": "R3", "member_id": "M-nobody", "coupon_id": couponA,
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100}}})
	require.Equal(t, http.StatusNotFound, code, string(raw))
	require.NotEqual(t, "coupon_not_found", errCode(t, raw).Code)
}

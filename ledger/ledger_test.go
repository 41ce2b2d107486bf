package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

var sh = func() *time.Location { l, _ := time.LoadLocation("Asia/Shanghai"); return l }()

// A Tuesday in June: no member day, no off-season, no birthday.
var t0 = time.Date(2025, 6, 10, 10, 0, 0, 0, sh)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func open(t *testing.T) (*Ledger, *clock) {
	t.Helper()
	c := &clock{t: t0}
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"), Options{Store: "S1", Till: "T1", Now: c.Now})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l, c
}

func verifyOK(t *testing.T, l *Ledger) string {
	t.Helper()
	var b bytes.Buffer
	ok, err := l.Verify(&b)
	require.NoError(t, err)
	require.True(t, ok, b.String())
	return b.String()
}

func enrol(t *testing.T, l *Ledger, id string, mut ...func(*EnrolRequest)) {
	t.Helper()
	r := EnrolRequest{Key: "enrol-" + id, Cashier: "c1", Member: entry.Member{ID: id, Name: "N " + id, Mobile: fmt.Sprintf("138%08d", crc32.ChecksumIEEE([]byte(id))%100000000)}}
	for _, m := range mut {
		m(&r)
	}
	_, err := l.Enrol(context.Background(), r)
	require.NoError(t, err)
}

func line(no int, qty, price int64) loyalty.Line {
	return loyalty.Line{LineNo: no, SKU: fmt.Sprintf("sku%d", no), Qty: qty, UnitPrice: price, Discountable: true, EarnsPoints: true}
}

func sale(t *testing.T, l *Ledger, r SaleRequest) *entry.Entry {
	t.Helper()
	e, err := l.CommitSale(context.Background(), r)
	require.NoError(t, err)
	return e
}

func points(t *testing.T, l *Ledger, id string) int64 {
	t.Helper()
	v, err := l.Member(id)
	require.NoError(t, err)
	return v.Points
}

var ctx = context.Background()

func TestSaleAndIdempotency(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	r := SaleRequest{ReceiptID: "R1", MemberID: "M1", Cashier: "c1", Lines: []loyalty.Line{line(1, 1, 10000)}}
	e := sale(t, l, r)
	require.Equal(t, entry.KindSale, e.Kind)
	require.Equal(t, int64(9500), e.Sale.Due) // silver 5 %
	require.Equal(t, int64(95), e.Sale.PointsEarned)
	require.Equal(t, "2026-12-31", e.Sale.LotExpiresAt)
	require.Equal(t, int64(95), points(t, l, "M1"))

	again := sale(t, l, r)
	require.Equal(t, e.Seq, again.Seq, "same request returns the first entry")
	r2 := r
	r2.Lines = []loyalty.Line{line(1, 2, 10000)}
	_, err := l.CommitSale(ctx, r2)
	require.ErrorIs(t, err, ErrKeyConflict)
	require.Contains(t, err.Error(), "different content")
	require.Equal(t, int64(95), points(t, l, "M1"), "nothing written twice")
	// Another till may reuse the receipt id.
	r3 := r
	r3.Till = "T2"
	e3 := sale(t, l, r3)
	require.Equal(t, uint64(1), e3.Seq)
	// Non-member sale.
	nm := sale(t, l, SaleRequest{ReceiptID: "R2", Lines: []loyalty.Line{line(1, 1, 500)}})
	require.Equal(t, int64(500), nm.Sale.Due)
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "R3", MemberID: "nobody", Lines: []loyalty.Line{line(1, 1, 500)}})
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "R4", Lines: nil})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.CommitSale(ctx, SaleRequest{Till: "T\x00", ReceiptID: "R5", Lines: []loyalty.Line{line(1, 1, 500)}})
	require.ErrorIs(t, err, ErrInvalid, "a NUL would break the log keys")
	tills, err := l.Tills()
	require.NoError(t, err)
	require.Equal(t, []string{"T1", "T2"}, tills)
	verifyOK(t, l)
}

func TestRedeemFIFOAndRefunds(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "M1")
	nd := func(no int, qty, price int64) loyalty.Line {
		x := line(no, qty, price)
		x.Discountable = false
		return x
	}
	// Lot A in 2025, lot B in 2026.
	a := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{nd(1, 1, 30000)}})
	require.Equal(t, int64(300), a.Sale.PointsEarned)
	c.Set(t0.AddDate(1, 0, 0))
	b := sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M1", Lines: []loyalty.Line{nd(1, 1, 50000)}, At: c.Now()})
	require.Equal(t, int64(500), b.Sale.PointsEarned)
	require.Equal(t, int64(800), points(t, l, "M1"))
	// Redeem 400: 300 from A (oldest) then 100 from B.
	s := sale(t, l, SaleRequest{ReceiptID: "C", MemberID: "M1", RedeemPoints: 400,
		Lines: []loyalty.Line{nd(1, 3, 1000), nd(2, 1, 2000)}, At: c.Now()})
	require.Equal(t, []entry.LotUse{{Lot: a.ID(), Points: 300}, {Lot: b.ID(), Points: 100}}, s.Sale.LotsUsed)
	require.Equal(t, int64(400), s.Sale.RedeemPoints)
	earned := s.Sale.PointsEarned
	require.Equal(t, 800-400+earned, points(t, l, "M1"))

	// Partial refunds of line 1 (qty 3): 1 then 2; they add up to the line exactly.
	r1, err := l.Refund(ctx, RefundRequest{RefundID: "F1", ReceiptID: "C", Lines: []RefundItem{{LineNo: 1, Qty: 1}}})
	require.NoError(t, err)
	r2, err := l.Refund(ctx, RefundRequest{RefundID: "F2", ReceiptID: "C", Lines: []RefundItem{{LineNo: 1, Qty: 2}}})
	require.NoError(t, err)
	l1 := s.Sale.Lines[0]
	require.Equal(t, l1.Paid, r1.Refund.Amount+r2.Refund.Amount)
	require.Equal(t, l1.RedeemPoints, r1.Refund.PointsRestored+r2.Refund.PointsRestored)
	require.Equal(t, l1.EarnedPoints, r1.Refund.PointsReversed+r2.Refund.PointsReversed)
	require.False(t, r1.Refund.Full)
	// Same refund twice applies once; other content is a conflict.
	again, err := l.Refund(ctx, RefundRequest{RefundID: "F2", ReceiptID: "C", Lines: []RefundItem{{LineNo: 1, Qty: 2}}})
	require.NoError(t, err)
	require.Equal(t, r2.Seq, again.Seq)
	_, err = l.Refund(ctx, RefundRequest{RefundID: "F2", ReceiptID: "C", Lines: []RefundItem{{LineNo: 2, Qty: 1}}})
	require.ErrorIs(t, err, ErrKeyConflict)
	// Too much of a line.
	_, err = l.Refund(ctx, RefundRequest{RefundID: "F3", ReceiptID: "C", Lines: []RefundItem{{LineNo: 1, Qty: 1}}})
	require.ErrorIs(t, err, ErrInvalid)
	// Full refund takes the rest; then nothing is left.
	r4, err := l.Refund(ctx, RefundRequest{RefundID: "F4", ReceiptID: "C", Full: true})
	require.NoError(t, err)
	require.Len(t, r4.Refund.Lines, 1)
	require.Equal(t, s.Sale.Due, r1.Refund.Amount+r2.Refund.Amount+r4.Refund.Amount)
	require.Equal(t, int64(800), points(t, l, "M1"), "redeemed points back, earned taken back")
	_, err = l.Refund(ctx, RefundRequest{RefundID: "F5", ReceiptID: "C", Full: true})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.Refund(ctx, RefundRequest{RefundID: "F6", ReceiptID: "nope", Full: true})
	require.ErrorIs(t, err, ErrNotFound)
	verifyOK(t, l)
}

func TestRefundDrivesPointsNegative(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	a := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 105300)}}) // 1000 points
	require.Equal(t, int64(1000), a.Sale.PointsEarned)
	_ = sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M1", RedeemPoints: 1000, Lines: []loyalty.Line{line(1, 1, 3000)}})
	p := points(t, l, "M1")
	require.Less(t, p, int64(1000))
	f, err := l.Refund(ctx, RefundRequest{RefundID: "F", ReceiptID: "A", Full: true})
	require.NoError(t, err)
	require.True(t, f.Refund.NegativeAfter)
	require.True(t, f.Refund.Full)
	v, _ := l.Member("M1")
	require.True(t, v.Negative)
	require.Equal(t, p-1000, v.Points)
	out := verifyOK(t, l)
	require.Contains(t, out, "below zero")
	// Points earned later pay the debt first.
	sale(t, l, SaleRequest{ReceiptID: "C", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 200000)}})
	verifyOK(t, l)
}

func TestTierUpgradeAtThirdSale(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	for i := 1; i <= 2; i++ {
		e := sale(t, l, SaleRequest{ReceiptID: fmt.Sprint(i), MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 1000)}})
		require.Equal(t, "silver", e.Sale.Tier)
	}
	before := points(t, l, "M1")
	e3 := sale(t, l, SaleRequest{ReceiptID: "3", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 1000)}})
	require.Equal(t, "silver", e3.Sale.Tier, "the qualifying sale is priced at the old tier")
	v, _ := l.Member("M1")
	require.Equal(t, "gold", v.Member.Tier)
	require.Equal(t, before+e3.Sale.PointsEarned+100, v.Points)
	es, err := l.Pending("T1", e3.Seq-1, 10)
	require.NoError(t, err)
	require.Len(t, es, 3)
	require.Equal(t, entry.KindTierChange, es[1].Kind)
	require.Equal(t, entry.KindPointsAdjust, es[2].Kind)
	require.Equal(t, "tier_upgrade", es[2].Points.Reason)
	e4 := sale(t, l, SaleRequest{ReceiptID: "4", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 1000)}})
	require.Equal(t, "gold", e4.Sale.Tier)
	require.Equal(t, int64(880), e4.Sale.Due)
	verifyOK(t, l)
}

func TestTopUpAndStoredValue(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	cases := []struct {
		id     string
		amount int64
		bonus  int64
	}{{"U1", 5000, 0}, {"U2", 10000000, 500000}, {"U3", 50000000, 5000000}, {"U4", 100000000, 12000000}, {"U5", 99999999, 5000000}}
	var total int64
	for _, c := range cases {
		e, err := l.TopUp(ctx, TopUpRequest{TopUpID: c.id, MemberID: "M1", Amount: c.amount})
		require.NoError(t, err)
		require.Equal(t, c.bonus, e.TopUp.Bonus, c.id)
		total += c.amount + c.bonus
	}
	_, err := l.TopUp(ctx, TopUpRequest{TopUpID: "U1", MemberID: "M1", Amount: 6000})
	require.ErrorIs(t, err, ErrKeyConflict)
	_, err = l.TopUp(ctx, TopUpRequest{TopUpID: "U9", MemberID: "M1", Amount: -1})
	require.ErrorIs(t, err, ErrInvalid)
	v, _ := l.Member("M1")
	require.Equal(t, total, v.StoredValue)

	enrol(t, l, "M2")
	_, err = l.TopUp(ctx, TopUpRequest{TopUpID: "V1", MemberID: "M2", Amount: 1000})
	require.NoError(t, err)
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "S1", MemberID: "M2", StoredValue: 1500, Lines: []loyalty.Line{line(1, 1, 2000)}})
	require.ErrorIs(t, err, ErrInsufficientStoredValue)
	s := sale(t, l, SaleRequest{ReceiptID: "S2", MemberID: "M2", StoredValue: 1000, Lines: []loyalty.Line{line(1, 1, 2000)}})
	require.Equal(t, int64(-1000), s.StoredValueDelta)
	v, _ = l.Member("M2")
	require.Equal(t, int64(0), v.StoredValue)
	// A partial refund returns money to stored value first.
	f, err := l.Refund(ctx, RefundRequest{RefundID: "F", ReceiptID: "S2", Full: true})
	require.NoError(t, err)
	require.Equal(t, int64(1000), f.Refund.StoredValue)
	require.Equal(t, s.Sale.Due, f.Refund.Amount)
	verifyOK(t, l)
}

func TestCouponsVoidAndReferral(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "REF")
	enrol(t, l, "M1", func(r *EnrolRequest) { r.ReferrerID = "REF"; r.CardToken = "tok1" })
	v, err := l.MemberByToken("tok1")
	require.NoError(t, err)
	require.Equal(t, "M1", v.Member.ID)
	require.Equal(t, int64(50), v.Points)
	require.Len(t, v.Coupons, 2) // welcome + referral
	require.Equal(t, int64(50), points(t, l, "REF"))
	_, err = l.MemberByMobile(v.Member.Mobile)
	require.NoError(t, err)
	_, err = l.MemberByToken("other")
	require.ErrorIs(t, err, ErrNotFound)

	welcome := "welcome-M1"
	s := sale(t, l, SaleRequest{ReceiptID: "S1", MemberID: "M1", CouponID: welcome, Lines: []loyalty.Line{line(1, 2, 3000)}})
	require.Equal(t, int64(1000), s.Sale.CouponValue)
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "S2", MemberID: "M1", CouponID: welcome, Lines: []loyalty.Line{line(1, 1, 3000)}})
	require.ErrorIs(t, err, ErrInvalid, "a used coupon cannot be used again")
	// A partial refund does not bring the coupon back; the last part does.
	f1, err := l.Refund(ctx, RefundRequest{RefundID: "F1", ReceiptID: "S1", Lines: []RefundItem{{1, 1}}})
	require.NoError(t, err)
	require.Empty(t, f1.Refund.CouponRestored)
	f2, err := l.Refund(ctx, RefundRequest{RefundID: "F2", ReceiptID: "S1", Lines: []RefundItem{{1, 1}}})
	require.NoError(t, err)
	require.Equal(t, welcome, f2.Refund.CouponRestored)
	_, err = l.Void(ctx, VoidRequest{ReceiptID: "S1"})
	require.ErrorIs(t, err, ErrInvalid, "a refunded sale cannot be voided")

	// Void brings everything back, the coupon too while valid.
	s3 := sale(t, l, SaleRequest{ReceiptID: "S3", MemberID: "M1", CouponID: welcome, Lines: []loyalty.Line{line(1, 1, 3000)}})
	vd, err := l.Void(ctx, VoidRequest{ReceiptID: "S3", Reason: "wrong items"})
	require.NoError(t, err)
	require.Equal(t, welcome, vd.Void.CouponRestored)
	require.Equal(t, -s3.PointsDelta, vd.PointsDelta)
	again, err := l.Void(ctx, VoidRequest{ReceiptID: "S3", Reason: "wrong items"})
	require.NoError(t, err)
	require.Equal(t, vd.Seq, again.Seq)
	_, err = l.Refund(ctx, RefundRequest{RefundID: "F9", ReceiptID: "S3", Full: true})
	require.ErrorIs(t, err, ErrInvalid)

	// An expired coupon is not restored.
	s4 := sale(t, l, SaleRequest{ReceiptID: "S4", MemberID: "M1", CouponID: "referral-M1", Lines: []loyalty.Line{line(1, 1, 3000)}})
	c.Set(t0.AddDate(0, 2, 0))
	f4, err := l.Refund(ctx, RefundRequest{RefundID: "F4", ReceiptID: "S4", Full: true, At: c.Now()})
	require.NoError(t, err)
	require.Empty(t, f4.Refund.CouponRestored)
	require.Equal(t, s4.Sale.Due, f4.Refund.Amount)
	verifyOK(t, l)

	// Enrolment is idempotent by key; a second member with the same mobile is refused.
	_, err = l.Enrol(ctx, EnrolRequest{Key: "k2", Member: entry.Member{Name: "x", Mobile: v.Member.Mobile}})
	require.ErrorIs(t, err, ErrKeyConflict)
	es, err := l.Enrol(ctx, EnrolRequest{Key: "k3", Member: entry.Member{Name: "gen"}})
	require.NoError(t, err)
	require.NotEmpty(t, es[0].MemberID)
	es2, err := l.Enrol(ctx, EnrolRequest{Key: "k3", Member: entry.Member{Name: "gen"}})
	require.NoError(t, err)
	require.Equal(t, es[0].MemberID, es2[0].MemberID)
	verifyOK(t, l)
}

func TestExpiryAndOfflineCap(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "M1")
	enrol(t, l, "M2")
	sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 1000000)}})
	sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M2", Lines: []loyalty.Line{line(1, 1, 1000000)}})
	require.Equal(t, int64(9500+100), points(t, l, "M1")) // 10,000 yuan spent: gold, +100
	// Offline: 5,000 points a day at most.
	_, err := l.CommitSale(ctx, SaleRequest{ReceiptID: "O1", MemberID: "M1", RedeemPoints: 6000, Offline: true, Lines: []loyalty.Line{line(1, 1, 200000)}})
	require.ErrorIs(t, err, ErrOfflineCap)
	sale(t, l, SaleRequest{ReceiptID: "O2", MemberID: "M1", RedeemPoints: 4000, Offline: true, Lines: []loyalty.Line{line(1, 1, 200000)}})
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "O3", MemberID: "M1", RedeemPoints: 1100, Offline: true, Lines: []loyalty.Line{line(1, 1, 200000)}})
	require.ErrorIs(t, err, ErrOfflineCap)
	require.Contains(t, err.Error(), "at most 1000 more")
	sale(t, l, SaleRequest{ReceiptID: "O4", MemberID: "M1", RedeemPoints: 1100, Lines: []loyalty.Line{line(1, 1, 200000)}}) // online: no cap
	verifyOK(t, l)

	// 2027-01-01: the 2025 lots are gone; the view shows it before any write.
	c.Set(time.Date(2027, 1, 1, 0, 0, 0, 0, sh))
	v, _ := l.Member("M2")
	require.Equal(t, int64(0), v.Points)
	n, err := l.ExpireLots(ctx, c.Now())
	require.NoError(t, err)
	require.Equal(t, 6, n) // M1: A, bonus, O2, O4; M2: B, bonus
	for _, id := range []string{"M1", "M2"} {
		require.Equal(t, int64(0), points(t, l, id))
	}
	n, err = l.ExpireLots(ctx, c.Now())
	require.NoError(t, err)
	require.Zero(t, n)
	verifyOK(t, l)
}

func TestLazyExpiryOnTouch(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "M1")
	a := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	c.Set(time.Date(2027, 3, 1, 12, 0, 0, 0, sh))
	s := sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	es, err := l.Pending("T1", a.Seq, 10)
	require.NoError(t, err)
	require.Equal(t, entry.KindPointsExpired, es[0].Kind)
	require.Equal(t, a.ID(), es[0].Points.Lot)
	require.Equal(t, int64(-95), es[0].PointsDelta)
	require.Equal(t, s.Seq, es[1].Seq)
	require.Equal(t, s.Sale.PointsEarned, points(t, l, "M1"))
	verifyOK(t, l)
}

func TestOutboxAckAndHQStates(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	tills, err := l.Tills()
	require.NoError(t, err)
	require.Equal(t, []string{"T1"}, tills)
	n, oldest, err := l.Backlog()
	require.NoError(t, err)
	require.Equal(t, 3, n) // enrol, welcome coupon, sale
	require.Equal(t, t0.UTC(), oldest)
	v, _ := l.Member("M1")
	require.Equal(t, int64(95), v.PointsPending)
	require.Equal(t, int64(0), v.PointsConfirmed)

	require.NoError(t, l.Ack("T1", 3))
	require.ErrorIs(t, l.Ack("T1", 9), ErrInvalid)
	a, _ := l.Acked("T1")
	require.Equal(t, uint64(3), a)
	v, _ = l.Member("M1")
	require.Equal(t, int64(0), v.PointsPending)
	require.Equal(t, int64(95), v.PointsConfirmed)

	// A local sale not yet acked, then HQ's state (which includes points
	// from another store) arrives: HQ's figure plus the pending sale.
	s := sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M1", CouponID: "welcome-M1", Lines: []loyalty.Line{line(1, 1, 20000)}})
	hqMember := v.Member
	hqMember.Tier = "gold"
	hqMember.CardTokens = []string{"tokHQ"}
	require.NoError(t, l.ApplyMemberStates([]MemberState{
		{Member: hqMember, Points: 595, StoredValue: 700, Coupons: []entry.MemberCoupon{{ID: "welcome-M1", MemberID: "M1", Value: 1000}, {ID: "recall", MemberID: "M1", Value: 2000}}},
		{Member: entry.Member{ID: "M9", Name: "from another store", Tier: "silver"}, Points: 10},
	}))
	v, _ = l.Member("M1")
	require.Equal(t, 595+s.PointsDelta, v.Points)
	require.Equal(t, s.PointsDelta, v.PointsPending)
	require.Equal(t, int64(700), v.StoredValue)
	require.Equal(t, "gold", v.Member.Tier)
	require.Len(t, v.Coupons, 1, "welcome stays used by the pending sale; recall is new")
	require.Equal(t, "recall", v.Coupons[0].ID)
	_, err = l.MemberByToken("tokHQ")
	require.NoError(t, err)
	require.Equal(t, int64(10), points(t, l, "M9"))
	verifyOK(t, l)
	require.NoError(t, l.Ack("T1", s.Seq))
	v, _ = l.Member("M1")
	require.Equal(t, 595+s.PointsDelta, v.PointsConfirmed)
	sale(t, l, SaleRequest{ReceiptID: "C", MemberID: "M9", RedeemPoints: 0, Lines: []loyalty.Line{line(1, 1, 100)}})
	verifyOK(t, l)

	require.NoError(t, l.SetSyncCursor("c42"))
	cur, err := l.SyncCursor()
	require.NoError(t, err)
	require.Equal(t, "c42", cur)
}

func TestVerifyFindsTampering(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	verifyOK(t, l)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		b := balance{Points: 1000}
		return tx.Bucket(bMembers).Put(memberKey("M1", tagBalance), b.encode(nil))
	}))
	var b bytes.Buffer
	ok, err := l.Verify(&b)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, b.String(), "member M1")
	require.Contains(t, b.String(), "lots sum")
	// A gap in the outbox.
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bLog).Delete(tillKey("T1", 2))
	}))
	b.Reset()
	ok, _ = l.Verify(&b)
	require.False(t, ok)
	require.Contains(t, b.String(), "outbox")
}

func TestGroupCommitKeepsPerRequestErrors(t *testing.T) {
	l, _ := open(t)
	for i := 0; i < 8; i++ {
		enrol(t, l, fmt.Sprintf("M%d", i))
	}
	var wg sync.WaitGroup
	errs := make([][]error, 8)
	for till := 0; till < 8; till++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				r := SaleRequest{Till: fmt.Sprintf("T%d", till), ReceiptID: fmt.Sprint(i), MemberID: fmt.Sprintf("M%d", till),
					Lines: []loyalty.Line{line(1, 1, 10000)}}
				if i%3 == 2 {
					r.RedeemPoints = 1000000 // always more than held: fails alone
				}
				_, err := l.CommitSale(ctx, r)
				errs[till] = append(errs[till], err)
			}
		}()
	}
	wg.Wait()
	for till := range errs {
		for i, err := range errs[till] {
			if i%3 == 2 {
				require.ErrorIs(t, err, ErrInsufficientPoints)
			} else {
				require.NoError(t, err)
			}
		}
		require.Equal(t, int64(3*95+100+17*88), points(t, l, fmt.Sprintf("M%d", till)), "gold after the third sale")
	}
	verifyOK(t, l)
}

func TestExportAndCompact(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	for i := 0; i < 20; i++ {
		sale(t, l, SaleRequest{ReceiptID: fmt.Sprint(i), MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	}
	var out bytes.Buffer
	var last [2]int
	require.NoError(t, l.Export(&out, func(d, t int) { last = [2]int{d, t} }))
	require.Equal(t, 24, strings.Count(out.String(), "\n")) // enrol, coupon, 20 sales, tier change, bonus
	require.Equal(t, [2]int{24, 24}, last)
	src := l.Path()
	require.NoError(t, l.Close())
	dst := filepath.Join(t.TempDir(), "compact.db")
	var done, total int64
	require.NoError(t, Compact(src, dst, func(d, t int64) { done, total = d, t }))
	require.Equal(t, total, done)
	require.ErrorIs(t, Compact(src, dst, nil), ErrInvalid, "never overwrites")
	l2, err := Open(dst, Options{Store: "S1", Till: "T1", Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	defer l2.Close()
	verifyOK(t, l2)
	require.Equal(t, int64(3*95+100+17*88), points(t, l2, "M1"))
	e := sale(t, l2, SaleRequest{ReceiptID: "new", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 100)}})
	require.Equal(t, uint64(25), e.Seq, "sequences survive compaction")
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	o := Options{Store: "S1", Till: "T1"}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	unchanged := func(p string, want []byte) {
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, want, got, "the file must not be touched")
	}
	junk := bytes.Repeat([]byte("not a ledger at all\n"), 500)
	p := write("junk.db", junk)
	_, err := Open(p, o)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "Move the file aside")
	unchanged(p, junk)

	p = write("empty.db", nil)
	_, err = Open(p, o)
	require.ErrorIs(t, err, ErrCorrupt)

	// A bbolt file that is not a ledger.
	p = filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(p, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }))
	require.NoError(t, db.Close())
	_, err = Open(p, o)
	require.ErrorIs(t, err, ErrCorrupt)

	// Newer schema.
	p = filepath.Join(dir, "newer.db")
	l, err := Open(p, o)
	require.NoError(t, err)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte("schema"), u64(SchemaVersion+1)) }))
	require.NoError(t, l.Close())
	_, err = Open(p, o)
	require.ErrorIs(t, err, ErrNewerSchema)
	require.Contains(t, err.Error(), "upgrade posagent")

	// Schema 1 (development layout) is refused, untouched.
	p = filepath.Join(dir, "older.db")
	l, err = Open(p, o)
	require.NoError(t, err)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte("schema"), u64(1)) }))
	require.NoError(t, l.Close())
	before, err := os.ReadFile(p)
	require.NoError(t, err)
	_, err = Open(p, o)
	require.ErrorIs(t, err, ErrOlderSchema)
	require.Contains(t, err.Error(), "start a new ledger")
	unchanged(p, before)

	// Damaged pages in a real ledger.
	p = filepath.Join(dir, "damaged.db")
	l, err = Open(p, o)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	for i := 0; i < 2*4096 && i < len(raw); i++ { // both meta pages
		raw[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(p, raw, 0o600))
	_, err = Open(p, o)
	require.ErrorIs(t, err, ErrCorrupt)

	// Another store's ledger.
	p = filepath.Join(dir, "other.db")
	l, err = Open(p, Options{Store: "S2"})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = Open(p, o)
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "S2")
}

func TestLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	l, err := Open(p, Options{Store: "S1"})
	require.NoError(t, err)
	defer l.Close()
	_, err = Open(p, Options{Store: "S1", LockTimeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), "another posagent")
	require.ErrorIs(t, Compact(p, p+".c", nil), ErrLocked)
}

func TestDiskFullLosesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "full.db")
	o := Options{Store: "S1", Till: "T1", MaxSize: 256 << 10, Now: func() time.Time { return t0 }}
	l, err := Open(p, o)
	require.NoError(t, err)
	enrol(t, l, "M1")
	var acked []string
	var full error
	for i := 0; i < 5000 && full == nil; i++ {
		id := fmt.Sprint(i)
		_, err := l.CommitSale(ctx, SaleRequest{ReceiptID: id, MemberID: "M1",
			Lines: []loyalty.Line{line(1, 1, 10000), line(2, 2, 333), line(3, 1, 999)}})
		if err != nil {
			full = err
			break
		}
		acked = append(acked, id)
	}
	require.ErrorIs(t, full, ErrDiskFull)
	require.Contains(t, full.Error(), "free disk space")
	require.NotEmpty(t, acked)
	// Still readable after the failure.
	verifyOK(t, l)
	require.NoError(t, l.Close())
	o.MaxSize = 0
	l, err = Open(p, o)
	require.NoError(t, err)
	defer l.Close()
	verifyOK(t, l)
	es, err := l.Pending("T1", 0, 100000)
	require.NoError(t, err)
	got := map[string]int{}
	for _, e := range es {
		if e.Kind == entry.KindSale {
			got[e.Key]++
		}
	}
	require.Len(t, got, len(acked))
	for _, id := range acked {
		require.Equal(t, 1, got[id])
	}
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "after", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 100)}})
	require.NoError(t, err)
}

func TestCancelledBeforeCommitWritesNothing(t *testing.T) {
	l, _ := open(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := l.CommitSale(cctx, SaleRequest{ReceiptID: "x", Lines: []loyalty.Line{line(1, 1, 100)}})
	require.ErrorIs(t, err, context.Canceled)
	n, _, err := l.Backlog()
	require.NoError(t, err)
	require.Zero(t, n)
	e := sale(t, l, SaleRequest{ReceiptID: "x", Lines: []loyalty.Line{line(1, 1, 100)}})
	require.Equal(t, uint64(1), e.Seq)
}

func TestClosed(t *testing.T) {
	l, _ := open(t)
	require.NoError(t, l.Close())
	_, err := l.CommitSale(ctx, SaleRequest{ReceiptID: "x", Lines: []loyalty.Line{line(1, 1, 1)}})
	require.True(t, errors.Is(err, ErrClosed))
}

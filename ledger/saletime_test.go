package ledger

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// kinds lists the kinds of every entry of till T1.
func kinds(t *testing.T, l *Ledger) []entry.Kind {
	t.Helper()
	es, err := l.Pending("T1", 0, 1000)
	require.NoError(t, err)
	var out []entry.Kind
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

func timeErr(t *testing.T, err error, kind string) *TimeError {
	t.Helper()
	require.ErrorIs(t, err, ErrInvalid)
	var te *TimeError
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, kind, te.Kind, "%v", err)
	return te
}

// A sale stamped far in the future is refused before it touches the
// member: no lot is written off, no multiplier, no lot lasting to 2100.
func TestSaleStampedInTheFutureIsRefused(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "M1")
	a := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.Equal(t, "2026-12-31", a.Sale.LotExpiresAt)
	before := kinds(t, l)

	far := time.Date(2099, 1, 18, 10, 0, 0, 0, sh) // a member day, 73 years ahead
	r := SaleRequest{ReceiptID: "F", MemberID: "M1", At: far, Lines: []loyalty.Line{line(1, 1, 10000)}}
	_, err := l.CommitSale(ctx, r)
	te := timeErr(t, err, TimeAhead)
	require.Equal(t, DefaultClockSkew, te.Limit)
	require.Contains(t, err.Error(), "ahead of the till's clock")
	_, err = l.Quote(ctx, r)
	timeErr(t, err, TimeAhead)
	require.Equal(t, before, kinds(t, l), "nothing written, no lot written off")
	require.Equal(t, int64(95), points(t, l, "M1"))

	// Within the skew (a POS clock a little ahead) it is a sale like any.
	e := sale(t, l, SaleRequest{ReceiptID: "S", MemberID: "M1", At: c.Now().Add(DefaultClockSkew), Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.Equal(t, int64(1), e.Sale.Multiplier)
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "S2", MemberID: "M1", At: c.Now().Add(DefaultClockSkew + time.Second), Lines: []loyalty.Line{line(1, 1, 10000)}})
	timeErr(t, err, TimeAhead)

	// Every write that takes a time is held to the same rule.
	_, err = l.TopUp(ctx, TopUpRequest{TopUpID: "TU", MemberID: "M1", Amount: 10000, At: far})
	timeErr(t, err, TimeAhead)
	_, err = l.Enrol(ctx, EnrolRequest{Key: "e9", Member: entry.Member{ID: "M9", Name: "x"}, At: far})
	timeErr(t, err, TimeAhead)
	_, err = l.Refund(ctx, RefundRequest{RefundID: "RF", ReceiptID: "A", Full: true, At: far})
	timeErr(t, err, TimeAhead)
	_, err = l.Void(ctx, VoidRequest{ReceiptID: "A", At: far})
	timeErr(t, err, TimeAhead)
	require.Equal(t, int64(190), points(t, l, "M1"))
	verifyOK(t, l)
}

// A receipt replayed later keeps its own time within MaxBackdate; older is
// refused, and so is a time before the member enrolled.
func TestBackdatedSaleBounds(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "M1")
	c.Set(t0.AddDate(0, 0, 10))
	now := c.Now()

	e := sale(t, l, SaleRequest{ReceiptID: "Q", At: now.Add(-DefaultMaxBackdate), Lines: []loyalty.Line{line(1, 1, 500)}})
	require.True(t, e.At.Equal(now.Add(-DefaultMaxBackdate)), "a queued receipt keeps its time")
	_, err := l.CommitSale(ctx, SaleRequest{ReceiptID: "Q2", At: now.Add(-DefaultMaxBackdate - time.Second), Lines: []loyalty.Line{line(1, 1, 500)}})
	te := timeErr(t, err, TimeTooOld)
	require.Equal(t, DefaultMaxBackdate, te.Limit)
	// Resending a committed receipt answers with the first result even
	// once its time has left the window.
	c.Set(now.Add(time.Hour))
	again, err := l.CommitSale(ctx, SaleRequest{ReceiptID: "Q", At: now.Add(-DefaultMaxBackdate), Lines: []loyalty.Line{line(1, 1, 500)}})
	require.NoError(t, err)
	require.Equal(t, e.Seq, again.Seq)
	c.Set(now)

	// M2 enrols now: a sale stamped the day before is refused even though
	// it is inside the window; a few seconds of clock difference between
	// the POS and the till are tolerated.
	enrol(t, l, "M2")
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "B", MemberID: "M2", At: now.Add(-24 * time.Hour), Lines: []loyalty.Line{line(1, 1, 500)}})
	te = timeErr(t, err, TimeBeforeMember)
	require.Equal(t, "M2", te.Member)
	_, err = l.TopUp(ctx, TopUpRequest{TopUpID: "TU", MemberID: "M2", Amount: 10000, At: now.Add(-time.Hour)})
	timeErr(t, err, TimeBeforeMember)
	sale(t, l, SaleRequest{ReceiptID: "B2", MemberID: "M2", At: now.Add(-30 * time.Second), Lines: []loyalty.Line{line(1, 1, 500)}})
	sale(t, l, SaleRequest{ReceiptID: "B3", MemberID: "M1", At: now.Add(-24 * time.Hour), Lines: []loyalty.Line{line(1, 1, 500)}})
	verifyOK(t, l)

	// The window is a setting.
	l2, err := Open(filepath.Join(t.TempDir(), "l2.db"), Options{Store: "S1", Till: "T1", Now: c.Now, MaxBackdate: time.Hour, ClockSkew: time.Second})
	require.NoError(t, err)
	defer l2.Close()
	_, err = l2.CommitSale(ctx, SaleRequest{ReceiptID: "X", At: now.Add(-2 * time.Hour), Lines: []loyalty.Line{line(1, 1, 500)}})
	timeErr(t, err, TimeTooOld)
	_, err = l2.CommitSale(ctx, SaleRequest{ReceiptID: "Y", At: now.Add(2 * time.Second), Lines: []loyalty.Line{line(1, 1, 500)}})
	timeErr(t, err, TimeAhead)
}

// Lots are written off by the ledger's own clock, never by a time a
// request carries.
func TestWriteOffOnlyByLedgerClock(t *testing.T) {
	l, c := open(t)
	enrol(t, l, "M1")
	a := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}}) // lot until 2026-12-31
	newYear := time.Date(2027, 1, 1, 0, 0, 0, 0, sh)

	// Two minutes before the lot expires, a sale stamped two minutes after
	// (within the skew) does not write it off.
	c.Set(newYear.Add(-2 * time.Minute))
	sale(t, l, SaleRequest{ReceiptID: "B", MemberID: "M1", At: newYear.Add(2 * time.Minute), Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.NotContains(t, kinds(t, l), entry.KindPointsExpired)
	// A sweep asked for a later time than the ledger's clock does not
	// run ahead of it.
	n, err := l.ExpireLots(ctx, time.Date(2099, 1, 18, 0, 0, 0, 0, sh))
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, int64(190), points(t, l, "M1"))

	// Once the ledger's clock passes the expiry, a receipt replayed from
	// before it still finds the lot gone, and the write-off carries the
	// ledger's time, not the receipt's.
	c.Set(newYear.Add(time.Hour))
	old := newYear.Add(-time.Hour)
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "C", MemberID: "M1", At: old, Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.NoError(t, err)
	es, err := l.Pending("T1", 0, 100)
	require.NoError(t, err)
	var off []entry.Entry
	for _, e := range es {
		if e.Kind == entry.KindPointsExpired {
			off = append(off, e)
		}
	}
	require.Len(t, off, 1)
	require.Equal(t, a.ID(), off[0].Points.Lot)
	require.True(t, off[0].At.Equal(c.Now()), "write-off at %v, ledger clock %v", off[0].At, c.Now())
	verifyOK(t, l)
}

// Verify reports a lot written off before it expired.
func TestVerifyFlagsPrematureWriteOff(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	a := sale(t, l, SaleRequest{ReceiptID: "A", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 10000)}})
	verifyOK(t, l)
	// Write the lot off on 2025-06-10 although it lasts until 2026-12-31:
	// a consistent ledger in every other respect.
	_, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		ms, err := loadMember(tx, "M1")
		if err != nil {
			return nil, err
		}
		p, _ := l.Programs().At(t0)
		a2 := newAlloc(tx)
		e := &entry.Entry{Kind: entry.KindPointsExpired, MemberID: "M1", PointsDelta: -95,
			Points: &entry.PointsChange{Reason: "expiry", Points: -95, Lot: a.ID(), LotsUsed: []entry.LotUse{{Lot: a.ID(), Points: 95}}}}
		l.stamp(e, "T1", "", t0, p)
		if _, err := ms.apply(e, a2.add(e), l.Programs(), nil); err != nil {
			return nil, err
		}
		if err := ms.save(w); err != nil {
			return nil, err
		}
		return nil, a2.flush(w)
	})
	require.NoError(t, err)
	require.Zero(t, points(t, l, "M1"))
	var b bytes.Buffer
	ok, err := l.Verify(&b)
	require.NoError(t, err)
	require.False(t, ok, b.String())
	require.Contains(t, b.String(), "before it expires")
	require.Contains(t, b.String(), a.ID())
}

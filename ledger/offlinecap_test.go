package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// richMember gives M1 20,000 points confirmed by HQ (never expiring here).
func richMember(t *testing.T, l *Ledger) {
	t.Helper()
	require.NoError(t, l.ApplyMemberStates([]MemberState{{
		Member: entry.Member{ID: "M1", Name: "Rich", Tier: "silver", EnrolledAt: t0.AddDate(-1, 0, 0).UTC().Format(time.RFC3339)},
		Points: 20000,
	}}))
}

func capErr(t *testing.T, err error) *OfflineCapError {
	t.Helper()
	require.ErrorIs(t, err, ErrOfflineCap)
	require.False(t, errors.Is(err, ErrInsufficientPoints), "the member has the points: %v", err)
	var ce *OfflineCapError
	require.True(t, errors.As(err, &ce), "%v", err)
	return ce
}

// The offline cap counts the points a sale really redeems (after the 50 %
// limit), and says how many more can be redeemed today.
func TestOfflineCapCountsRedeemedPoints(t *testing.T) {
	l, c := open(t)
	richMember(t, l)
	// ¥63.16 silver: net ¥60.00, so 50 % lets 3,000 points be used.
	small := []loyalty.Line{line(1, 1, 6316)}
	big := []loyalty.Line{line(1, 1, 100000)}

	e := sale(t, l, SaleRequest{ReceiptID: "O1", MemberID: "M1", RedeemPoints: 8000, Offline: true, Lines: small})
	require.Equal(t, int64(3000), e.Sale.RedeemPoints, "clipped by the 50 %% rule, not refused by the cap")
	require.True(t, e.Sale.OfflineRedeem)

	_, err := l.CommitSale(ctx, SaleRequest{ReceiptID: "O2", MemberID: "M1", RedeemPoints: 3000, Offline: true, Lines: big})
	ce := capErr(t, err)
	require.Equal(t, OfflineCapError{Member: "M1", Cap: 5000, Used: 3000, Left: 2000}, *ce)
	require.Contains(t, err.Error(), "at most 2000 more")
	_, err = l.Quote(ctx, SaleRequest{MemberID: "M1", RedeemPoints: 3000, Offline: true, Lines: big})
	capErr(t, err)

	sale(t, l, SaleRequest{ReceiptID: "O3", MemberID: "M1", RedeemPoints: 2000, Offline: true, Lines: big})
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "O4", MemberID: "M1", RedeemPoints: 100, Offline: true, Lines: big})
	require.Zero(t, capErr(t, err).Left)
	// A receipt stamped yesterday counts against today's limit: it must
	// not start a fresh day for the member.
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "O5", MemberID: "M1", RedeemPoints: 100, Offline: true, Lines: big, At: c.Now().Add(-24 * time.Hour)})
	capErr(t, err)
	// Online there is no cap; a sale without redemption always goes.
	sale(t, l, SaleRequest{ReceiptID: "O6", MemberID: "M1", RedeemPoints: 1000, Lines: big})
	sale(t, l, SaleRequest{ReceiptID: "O7", MemberID: "M1", Offline: true, Lines: big})

	// The next local day the limit starts again.
	c.Set(t0.Add(24 * time.Hour))
	sale(t, l, SaleRequest{ReceiptID: "O8", MemberID: "M1", RedeemPoints: 5000, Offline: true, Lines: big})
	verifyOK(t, l)
}

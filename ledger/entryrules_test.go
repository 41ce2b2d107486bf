package ledger

import (
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
)

// TestLedgerHoldsEntriesToHQsRules: the till refuses, as an invalid
// request, what HQ would refuse (ids outside the id rule), so it never
// writes an entry HQ cannot take; nothing is written.
func TestLedgerHoldsEntriesToHQsRules(t *testing.T) {
	l, _ := open(t)
	enrol(t, l, "M1")
	for _, r := range []SaleRequest{
		{ReceiptID: "R\u202e1", MemberID: "M1", Cashier: "c1"},
		{ReceiptID: "R 1", MemberID: "M1", Cashier: "c1"},
		{ReceiptID: "R1", MemberID: "M1", Cashier: "c\x001"},
		{ReceiptID: "R1", MemberID: "M1", Cashier: "张三"},
	} {
		r.Lines = []loyalty.Line{line(1, 1, 10000)}
		_, err := l.CommitSale(ctx, r)
		require.ErrorIs(t, err, ErrInvalid, "%+v", r)
		require.ErrorContains(t, err, "is not a valid id")
	}
	require.Equal(t, int64(0), points(t, l, "M1"))
	e := sale(t, l, SaleRequest{ReceiptID: "R-20260318-0042", MemberID: "M1", Cashier: "c07", Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.NoError(t, e.Validate())
	verifyOK(t, l)
}

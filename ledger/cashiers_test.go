package ledger

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

func testHash(t *testing.T, p string) string {
	t.Helper()
	h, err := pin.HashWith(p, pin.Params{Memory: 64, Time: 1, Threads: 1})
	require.NoError(t, err)
	return h
}

func TestCashiersLocalAndFromHQ(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, Options{Store: "S1", Till: "T1"})
	require.NoError(t, err)
	_, err = l.Cashier("c1")
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, l.PutCashier(ctx, staff.Cashier{ID: "c1", Name: "Li Na", Role: staff.RoleCashier, PINHash: testHash(t, "1234")}))
	require.ErrorIs(t, l.PutCashier(ctx, staff.Cashier{ID: "c2", Name: "X", Role: "boss", PINHash: testHash(t, "1234")}), ErrInvalid)
	require.ErrorIs(t, l.PutCashier(ctx, staff.Cashier{ID: "c2", Name: "X", Role: staff.RoleCashier, PINHash: "1234"}), ErrInvalid, "a PIN where a hash belongs")
	require.ErrorIs(t, l.PutCashier(ctx, staff.Cashier{ID: "c2", Store: "S2", Name: "X", Role: staff.RoleCashier, PINHash: testHash(t, "1234")}), ErrInvalid)

	// HQ's list replaces its own earlier list; local cashiers stay unless HQ names them.
	hq := []staff.Cashier{{ID: "s1", Store: "S1", Name: "Wang", Role: staff.RoleSupervisor, PINHash: testHash(t, "9999")},
		{ID: "h2", Store: "S1", Name: "Zhao", Role: staff.RoleCashier, PINHash: testHash(t, "5555")}}
	require.NoError(t, l.ApplyCashiers("v1", hq))
	require.NoError(t, l.ApplyCashiers("v2", hq[:1]))
	cs, err := l.Cashiers()
	require.NoError(t, err)
	require.Len(t, cs, 2)
	require.Equal(t, "c1", cs[0].ID)
	require.Equal(t, staff.SourceLocal, cs[0].Source)
	require.Equal(t, "s1", cs[1].ID)
	require.Equal(t, staff.SourceHQ, cs[1].Source)
	require.ErrorIs(t, l.PutCashier(ctx, staff.Cashier{ID: "s1", Name: "Me", Role: staff.RoleSupervisor, PINHash: testHash(t, "1111")}), ErrInvalid,
		"a till cannot overwrite a cashier HQ manages")
	require.ErrorIs(t, l.ApplyCashiers("v3", []staff.Cashier{{ID: "x", Store: "S9", Name: "X", Role: staff.RoleCashier, PINHash: testHash(t, "1234")}}), ErrInvalid)

	// Lockout: persisted, survives a restart, cleared by a right PIN.
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= 2; i++ {
		lo, err := l.RecordSignIn(ctx, "c1", false, now, 3, 5*time.Minute)
		require.NoError(t, err)
		require.Equal(t, i, lo.Failures)
		require.False(t, lo.Locked(now))
	}
	lo, err := l.RecordSignIn(ctx, "c1", false, now, 3, 5*time.Minute)
	require.NoError(t, err)
	require.True(t, lo.Locked(now))
	require.False(t, lo.Locked(now.Add(5*time.Minute)))
	require.NoError(t, l.Close())

	l, err = Open(path, Options{Store: "S1", Till: "T1"})
	require.NoError(t, err)
	defer l.Close()
	lo, err = l.CashierLockout("c1")
	require.NoError(t, err)
	require.True(t, lo.Locked(now.Add(time.Minute)), "the lockout survives a restart")
	v, err := l.CashiersVersion()
	require.NoError(t, err)
	require.Equal(t, "v2", v)
	lo, err = l.RecordSignIn(ctx, "c1", true, now, 3, 5*time.Minute)
	require.NoError(t, err)
	require.Equal(t, Lockout{}, lo)
	verifyOK(t, l)
}

func TestApproverOnEntries(t *testing.T) {
	l, _ := open(t)
	ctx := context.Background()
	enrol(t, l, "M1")
	e, err := l.TopUp(ctx, TopUpRequest{TopUpID: "tu1", MemberID: "M1", Cashier: "c1", Approver: "s1", Amount: 100000})
	require.NoError(t, err)
	require.Equal(t, "s1", e.Approver)
	require.NoError(t, e.Validate())
	// A resend without the approver is another request.
	_, err = l.TopUp(ctx, TopUpRequest{TopUpID: "tu1", MemberID: "M1", Cashier: "c1", Amount: 100000})
	require.True(t, errors.Is(err, ErrKeyConflict), "%v", err)
	s := sale(t, l, SaleRequest{ReceiptID: "r1", MemberID: "M1", Cashier: "c1", Lines: []loyalty.Line{line(1, 1, 5000)}})
	require.Empty(t, s.Approver)
	v, err := l.Void(ctx, VoidRequest{ReceiptID: "r1", Cashier: "c1", Approver: "s1"})
	require.NoError(t, err)
	require.Equal(t, "s1", v.Approver)
}

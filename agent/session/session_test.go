package session_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/session"
	"posagent/ledger"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

func open(t *testing.T) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Store: "S1", Till: "T1"})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	h, err := pin.HashWith("2468", pin.Params{Memory: 64, Time: 1, Threads: 1})
	require.NoError(t, err)
	require.NoError(t, l.PutCashier(context.Background(), staff.Cashier{ID: "c1", Name: "A", Role: staff.RoleCashier, PINHash: h}))
	return l
}

// TestParallelGuessesStopAtTheLock: guesses sent at once cannot all get
// their PIN checked before the first failure is counted.
func TestParallelGuessesStopAtTheLock(t *testing.T) {
	l := open(t)
	m, err := session.New(session.Options{Store: l, MaxTries: 3, Lockout: time.Hour})
	require.NoError(t, err)
	var mu sync.Mutex
	checked := 0
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			_, err := m.SignIn(context.Background(), "c1", "00"+string(rune('0'+i%10))+"0")
			if errors.Is(err, session.ErrWrongPIN) {
				mu.Lock()
				checked++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 2, checked, "two wrong PINs answered as such, the third locks, the rest find the lock")
	_, err = m.SignIn(context.Background(), "c1", "2468")
	require.ErrorIs(t, err, session.ErrLocked)
}

func TestIdleAndSignOut(t *testing.T) {
	l := open(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m, err := session.New(session.Options{Store: l, Idle: time.Minute, Now: clock})
	require.NoError(t, err)
	s, err := m.SignIn(context.Background(), "c1", "2468")
	require.NoError(t, err)
	require.Len(t, s.Token, 64)
	require.NotEqual(t, s.Token, s.CSRF)
	require.True(t, s.CSRFOK(s.CSRF))
	require.False(t, s.CSRFOK(""))

	mu.Lock()
	now = now.Add(50 * time.Second)
	mu.Unlock()
	require.True(t, m.Alive(s.Token), "Alive does not touch")
	_, ok := m.Lookup(s.Token, true)
	require.True(t, ok)
	mu.Lock()
	now = now.Add(50 * time.Second)
	mu.Unlock()
	_, ok = m.Lookup(s.Token, false)
	require.True(t, ok, "the touch 50 s ago keeps it")
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	_, ok = m.Lookup(s.Token, true)
	require.False(t, ok, "idle a minute")

	s, err = m.SignIn(context.Background(), "c1", "2468")
	require.NoError(t, err)
	m.SignOut(s.Token)
	require.False(t, m.Alive(s.Token))
}

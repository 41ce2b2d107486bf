package hqtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

func testMemberCodes(t *testing.T, st hq.Store) {
	ms, ok := st.(hq.MemberCodeStore)
	require.True(t, ok, "the store keeps no member-code keys")
	c := ctx(t)
	keys, err := ms.MemberCodeKeys(c)
	require.NoError(t, err)
	require.Empty(t, keys)

	// Several processes on first use: each offers its own key, all end up
	// with one.
	var wg sync.WaitGroup
	got := make([]hq.MemberCodeKey, 6)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := hq.NewMemberCodeKey(T0)
			require.NoError(t, err)
			got[i], err = ms.EnsureMemberCodeKey(c, k)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	for _, k := range got[1:] {
		require.Equal(t, got[0].ID, k.ID)
	}
	first := got[0]
	require.Len(t, first.Private, 64)
	require.Len(t, first.ShortSecret, 32)
	keys, err = ms.MemberCodeKeys(c)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Equal(t, first.Private, keys[0].Private)
	require.True(t, keys[0].CreatedAt.Equal(T0))

	// Rotation retires the active key and keeps it until its codes expire;
	// the next rotation after that drops it.
	k2, err := hq.NewMemberCodeKey(T0.Add(time.Hour))
	require.NoError(t, err)
	require.NoError(t, ms.RotateMemberCodeKey(c, k2, k2.CreatedAt))
	keys, err = ms.MemberCodeKeys(c)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, first.ID, keys[0].ID)
	require.True(t, keys[0].RetiredAt.Equal(T0.Add(time.Hour)), "retired at %s", keys[0].RetiredAt)
	require.Equal(t, k2.ID, keys[1].ID)
	require.True(t, keys[1].RetiredAt.IsZero())
	active, err := ms.EnsureMemberCodeKey(c, first)
	require.NoError(t, err)
	require.Equal(t, k2.ID, active.ID)
	k3, err := hq.NewMemberCodeKey(T0.Add(2 * time.Hour))
	require.NoError(t, err)
	require.NoError(t, ms.RotateMemberCodeKey(c, k3, k3.CreatedAt))
	keys, err = ms.MemberCodeKeys(c)
	require.NoError(t, err)
	require.Len(t, keys, 2, "the first key's codes expired an hour ago")
	require.Equal(t, []string{k2.ID, k3.ID}, []string{keys[0].ID, keys[1].ID})
	require.Error(t, ms.RotateMemberCodeKey(c, k3, k3.CreatedAt), "the same key again")
	// A rotation whose key signs only later (its lead time): the key
	// retired 30 s before now still verifies and is kept; the active one
	// is retired when the new one starts signing.
	k4, err := hq.NewMemberCodeKey(T0.Add(2*time.Hour + 10*time.Minute))
	require.NoError(t, err)
	require.NoError(t, ms.RotateMemberCodeKey(c, k4, T0.Add(2*time.Hour+30*time.Second)))
	keys, err = ms.MemberCodeKeys(c)
	require.NoError(t, err)
	require.Equal(t, []string{k2.ID, k3.ID, k4.ID}, []string{keys[0].ID, keys[1].ID, keys[2].ID})
	require.True(t, keys[1].RetiredAt.Equal(k4.CreatedAt), "retired at %s", keys[1].RetiredAt)
	require.True(t, keys[2].CreatedAt.Equal(k4.CreatedAt))

	// Claims: the first use wins; the same till again is no repeat; other
	// tills are repeats, once each.
	claim := func(store, till string, at time.Time, late bool) hq.MemberCodeClaim {
		return hq.MemberCodeClaim{Code: "c0ffee", Member: "M7", Store: store, Till: till, SeenAt: at,
			Expires: T0.Add(time.Minute), At: at.Add(time.Second), Late: late}
	}
	a := claim("S1", "T1", T0, false)
	f, rep, err := ms.ClaimMemberCode(c, a)
	require.NoError(t, err)
	require.False(t, rep)
	require.Equal(t, "S1", f.Store)
	_, rep, err = ms.ClaimMemberCode(c, a)
	require.NoError(t, err)
	require.False(t, rep, "a retried upload of the same claim")
	for range 2 {
		f, rep, err = ms.ClaimMemberCode(c, claim("S2", "T9", T0.Add(10*time.Second), true))
		require.NoError(t, err)
		require.True(t, rep)
		require.Equal(t, "T1", f.Till)
		require.True(t, f.SeenAt.Equal(T0))
	}
	_, rep, err = ms.ClaimMemberCode(c, claim("S1", "T2", T0.Add(20*time.Second), false))
	require.NoError(t, err)
	require.True(t, rep)
	_, rep, err = ms.ClaimMemberCode(c, hq.MemberCodeClaim{Code: "other", Member: "M8", Store: "S2", Till: "T9", SeenAt: T0, Expires: T0, At: T0})
	require.NoError(t, err)
	require.False(t, rep)

	reps, err := ms.MemberCodeRepeats(c, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, 2)
	require.Equal(t, "S2", reps[0].Again.Store)
	require.True(t, reps[0].Again.Late)
	require.Equal(t, "S1", reps[0].First.Store)
	require.Equal(t, "c0ffee", reps[0].Again.Code)
	require.Equal(t, "T2", reps[1].Again.Till)
	reps, err = ms.MemberCodeRepeats(c, T0.Add(15*time.Second), time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, 1)
	require.Equal(t, "T2", reps[0].Again.Till)
	reps, err = ms.MemberCodeRepeats(c, time.Time{}, T0.Add(21*time.Second))
	require.NoError(t, err)
	require.Len(t, reps, 1, "until is not included: the T2 repeat was received at T0+21s")
	require.Equal(t, "T9", reps[0].Again.Till)
}

// testMemberCodeRepeatsByTime: a range of received times returns exactly
// the repeats received in it, [since, until), oldest first, whatever order
// they were recorded in; both ends of a month are where a report cuts.
func testMemberCodeRepeatsByTime(t *testing.T, st hq.Store) {
	ms, ok := st.(hq.MemberCodeStore)
	require.True(t, ok, "the store keeps no member-code keys")
	c := ctx(t)
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, Shanghai)
	april := march.AddDate(0, 1, 0)
	at := []time.Time{ // recorded in this order
		april, // the first instant of April: not March's
		march.Add(5 * time.Hour),
		april.Add(-time.Nanosecond), // March's last instant (kept at microseconds by some stores)
		march.Add(-time.Microsecond),
		march, // March's first instant
		march.Add(5 * time.Hour),
		march.AddDate(-1, 0, 0),
	}
	for i, a := range at {
		code := fmt.Sprintf("code%02d", i)
		_, rep, err := ms.ClaimMemberCode(c, hq.MemberCodeClaim{Code: code, Member: "M1", Store: "S1", Till: "T1", SeenAt: a, Expires: a.Add(time.Minute), At: a.Add(-time.Second)})
		require.NoError(t, err)
		require.False(t, rep)
		_, rep, err = ms.ClaimMemberCode(c, hq.MemberCodeClaim{Code: code, Member: "M1", Store: "S2", Till: "T7", SeenAt: a, Expires: a.Add(time.Minute), At: a})
		require.NoError(t, err)
		require.True(t, rep)
	}
	reps, err := ms.MemberCodeRepeats(c, march, april)
	require.NoError(t, err)
	var got []string
	for _, r := range reps {
		got = append(got, r.Again.Code)
		require.Equal(t, "S1", r.First.Store)
		require.Equal(t, "S2", r.Again.Store)
		require.Equal(t, "T7", r.Again.Till)
	}
	require.Equal(t, []string{"code04", "code01", "code05", "code02"}, got)
	reps, err = ms.MemberCodeRepeats(c, april, time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, 1)
	require.Equal(t, "code00", reps[0].Again.Code)
	reps, err = ms.MemberCodeRepeats(c, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, len(at))
	require.Equal(t, "code06", reps[0].Again.Code)
	reps, err = ms.MemberCodeRepeats(c, april.AddDate(0, 1, 0), time.Time{})
	require.NoError(t, err)
	require.Empty(t, reps)
}

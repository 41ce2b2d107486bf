package hqtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

// testMemberLookup: a store's look-up of a member gives the member's state
// as the feed would and the acked marks of that store's tills only.
func testMemberLookup(t *testing.T, st hq.Store) {
	c := ctx(t)
	a1 := &Till{Store: "SA", Till: "T1"}
	a2 := &Till{Store: "SA", Till: "T2"}
	b := &Till{Store: "SB", Till: "T1"}
	for _, bt := range []hq.Batch{
		Batch(a1.Enrol("M1", T0), a1.Sale("M1", T0.Add(time.Hour), 1000, 10, 0, 0, "")),
		Batch(a2.TopUp("M1", T0.Add(2*time.Hour), 5000, 0)),
		Batch(b.Sale("M1", T0.Add(3*time.Hour), 2000, 20, 0, 0, "")),
	} {
		_, err := st.Ingest(c, bt)
		require.NoError(t, err)
	}
	m, err := st.Member(c, "M1")
	require.NoError(t, err)

	l, err := st.MemberLookup(c, "SA", "M1")
	require.NoError(t, err)
	require.Equal(t, m.State(), l.Member)
	require.EqualValues(t, 30, l.Member.Points)
	require.EqualValues(t, 5000, l.Member.StoredValue)
	require.Equal(t, map[string]uint64{"T1": 2, "T2": 1}, l.Acked)

	l, err = st.MemberLookup(c, "SB", "M1")
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"T1": 1}, l.Acked)

	// A store that never uploaded has no marks; the map is empty, not nil.
	l, err = st.MemberLookup(c, "SC", "M1")
	require.NoError(t, err)
	require.NotNil(t, l.Acked)
	require.Empty(t, l.Acked)

	_, err = st.MemberLookup(c, "SA", "M-none")
	require.ErrorIs(t, err, hq.ErrNotFound)
}

// testMemberLookupConcurrent: while a till uploads sale after sale, every
// look-up's state holds exactly the entries up to the mark it comes with,
// which is what lets a till apply it without counting an entry twice.
func testMemberLookupConcurrent(t *testing.T, st hq.Store) {
	c := ctx(t)
	tl := &Till{Store: "SA", Till: "T1"}
	_, err := st.Ingest(c, Batch(tl.Enrol("M1", T0)))
	require.NoError(t, err)
	const sales = 60
	done := make(chan error, 1)
	go func() {
		for i := range sales {
			if _, err := st.Ingest(c, Batch(tl.Sale("M1", T0.Add(time.Duration(i)*time.Minute), 1000, 10, 0, 0, ""))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var mu sync.Mutex
	seen := map[uint64]bool{}
	lctx, cancel := context.WithCancel(c)
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for i := 0; i < 2000 && lctx.Err() == nil; i++ {
				l, err := st.MemberLookup(lctx, "SA", "M1")
				if lctx.Err() != nil {
					return
				}
				if !assertNoErr(t, err) {
					return
				}
				// Mark 1 is the enrolment; each later one a sale of 10 points.
				acked := l.Acked["T1"]
				if acked >= 1 && l.Member.Points != int64(acked-1)*10 {
					t.Errorf("points %d with mark %d: want %d", l.Member.Points, acked, (acked-1)*10)
					return
				}
				mu.Lock()
				seen[acked] = true
				mu.Unlock()
			}
		})
	}
	require.NoError(t, <-done)
	cancel()
	wg.Wait()
	l, err := st.MemberLookup(c, "SA", "M1")
	require.NoError(t, err)
	require.EqualValues(t, sales*10, l.Member.Points)
	require.EqualValues(t, sales+1, l.Acked["T1"])
	t.Logf("look-ups saw %d distinct marks", len(seen))
}

func assertNoErr(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

package hqtest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

// RunEnrol is the self-enrolment storage suite: both stores must pass it.
// open returns a fresh, empty store; the suite closes it.
func RunEnrol(t *testing.T, open func(t *testing.T) hq.Store) {
	runSuite(t, open, []suiteTest[hq.EnrolStore]{
		{"Pending", testEnrolPending},
		{"PendingConcurrent", testEnrolPendingConcurrent},
		{"CardLinks", testEnrolCardLinks},
		{"WebEnrolment", testEnrolWebEnrolment},
		{"PurgePending", testEnrolPurgePending},
		{"PurgePendingConcurrent", testEnrolPurgePendingConcurrent},
	})
}

func testEnrolPending(t *testing.T, es hq.EnrolStore) {
	c := ctx(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var sawFound []bool
	put := func(name string) error {
		return es.UpdatePending(c, "13800001111", func(p hq.Pending, found bool) (hq.Pending, bool, error) {
			sawFound = append(sawFound, found)
			p.Name, p.Store, p.CodeHash, p.Expires, p.Sends = name, "S1", "h", at, p.Sends+1
			return p, false, nil
		})
	}
	require.NoError(t, put("A"))
	require.NoError(t, put("B"))
	require.Equal(t, []bool{false, true}, sawFound)
	var got hq.Pending
	require.NoError(t, es.UpdatePending(c, "13800001111", func(p hq.Pending, found bool) (hq.Pending, bool, error) {
		got = p
		return p, false, nil
	}))
	require.Equal(t, hq.Pending{Mobile: "13800001111", Name: "B", Store: "S1", CodeHash: "h", Expires: at, Sends: 2}, got)

	// An error from fn writes nothing, not even for a new mobile.
	boom := errors.New("boom")
	err := es.UpdatePending(c, "13800001111", func(p hq.Pending, _ bool) (hq.Pending, bool, error) {
		p.Name = "C"
		return p, false, boom
	})
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, es.UpdatePending(c, "13900002222", func(p hq.Pending, _ bool) (hq.Pending, bool, error) {
		return p, false, boom
	}), boom)
	require.NoError(t, es.UpdatePending(c, "13900002222", func(p hq.Pending, found bool) (hq.Pending, bool, error) {
		require.False(t, found, "a failed first update left a record")
		return p, true, nil
	}))
	require.NoError(t, es.UpdatePending(c, "13800001111", func(p hq.Pending, found bool) (hq.Pending, bool, error) {
		require.Equal(t, "B", p.Name)
		return p, true, nil // delete
	}))
	require.NoError(t, es.UpdatePending(c, "13800001111", func(p hq.Pending, found bool) (hq.Pending, bool, error) {
		require.False(t, found)
		return p, true, nil
	}))
}

// testEnrolPendingConcurrent: updates of one mobile never lose a count
// (the code attempts and the send limit depend on it).
func testEnrolPendingConcurrent(t *testing.T, es hq.EnrolStore) {
	c := ctx(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- es.UpdatePending(c, "13700003333", func(p hq.Pending, _ bool) (hq.Pending, bool, error) {
				p.Attempts++
				return p, false, nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, es.UpdatePending(c, "13700003333", func(p hq.Pending, _ bool) (hq.Pending, bool, error) {
		require.Equal(t, n, p.Attempts)
		return p, false, nil
	}))
}

func testEnrolCardLinks(t *testing.T, es hq.EnrolStore) {
	c := ctx(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, m := range []string{"M1", "M1", "M2"} {
		require.NoError(t, es.AddCardLink(c, hq.CardLink{TokenHash: fmt.Sprintf("h%d", i), Member: m, CreatedAt: at}))
	}
	require.ErrorIs(t, es.AddCardLink(c, hq.CardLink{TokenHash: "h0", Member: "M3", CreatedAt: at}), hq.ErrConflict)
	l, err := es.CardLink(c, "h1")
	require.NoError(t, err)
	require.Equal(t, hq.CardLink{TokenHash: "h1", Member: "M1", CreatedAt: at}, l)
	_, err = es.CardLink(c, "nope")
	require.ErrorIs(t, err, hq.ErrNotFound)

	n, err := es.RevokeCardLinks(c, "M1", at.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = es.RevokeCardLinks(c, "M1", at.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 0, n, "revoked links are not revoked again")
	for _, h := range []string{"h0", "h1"} {
		l, err := es.CardLink(c, h)
		require.NoError(t, err)
		require.Equal(t, at.Add(time.Hour), l.RevokedAt)
	}
	l, err = es.CardLink(c, "h2")
	require.NoError(t, err)
	require.True(t, l.RevokedAt.IsZero(), "another member's link stays")
	// A member id that is a prefix of another's revokes only its own.
	require.NoError(t, es.AddCardLink(c, hq.CardLink{TokenHash: "h9", Member: "M22", CreatedAt: at}))
	n, err = es.RevokeCardLinks(c, "M2", at)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	l, err = es.CardLink(c, "h9")
	require.NoError(t, err)
	require.True(t, l.RevokedAt.IsZero())
}

func testEnrolWebEnrolment(t *testing.T, es hq.EnrolStore) {
	c := ctx(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	w := hq.WebEnrolment{Member: "S1-WEB-1", Mobile: "13800001111", Store: "S1", Cashier: "C07", ConsentAt: at, Consent: "我同意", At: at.Add(time.Minute)}
	require.NoError(t, es.AddWebEnrolment(c, w))
	again := w
	again.Cashier = "C08"
	require.NoError(t, es.AddWebEnrolment(c, again), "a second record is a no-op")
	got, err := es.WebEnrolment(c, "S1-WEB-1")
	require.NoError(t, err)
	require.Equal(t, w, got)
	_, err = es.WebEnrolment(c, "S1-WEB-2")
	require.ErrorIs(t, err, hq.ErrNotFound)
}

// testEnrolPurgePending: only records whose code expired before the bound
// and whose send window is over go; a live code, a younger sign-up and a
// window the per-mobile limit still counts stay, and so does what they say.
func testEnrolPurgePending(t *testing.T, es hq.EnrolStore) {
	c := ctx(t)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	expiredBefore, windowBefore := now.Add(-24*time.Hour), now.Add(-time.Hour)
	recs := map[string]hq.Pending{
		"13800000001": {Name: "never confirmed", CodeHash: "h", Expires: now.Add(-25 * time.Hour), Sends: 1, WindowStart: now.Add(-25*time.Hour - 5*time.Minute)},
		"13800000002": {Name: "live code", CodeHash: "h", Expires: now.Add(3 * time.Minute), Sends: 1, WindowStart: now.Add(-2 * time.Minute)},
		"13800000003": {Name: "younger than a day", CodeHash: "h", Expires: now.Add(-23 * time.Hour), Sends: 2, WindowStart: now.Add(-23 * time.Hour)},
		"13800000004": {Sends: 1, WindowStart: now.Add(-2 * time.Hour)},           // what a confirmed sign-up leaves
		"13800000005": {Sends: 3, WindowStart: now.Add(-10 * time.Minute)},        // confirmed, its sends still counted
		"13800000006": {Sends: 5, WindowStart: windowBefore, Name: "at the edge"}, // not before: kept
	}
	for m, p := range recs {
		require.NoError(t, es.UpdatePending(c, m, func(hq.Pending, bool) (hq.Pending, bool, error) { return p, false, nil }))
	}
	n, err := es.PurgePending(c, expiredBefore, windowBefore)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for m, p := range recs {
		gone := m == "13800000001" || m == "13800000004"
		require.Equal(t, gone, p.Stale(expiredBefore, windowBefore), m)
		require.NoError(t, es.UpdatePending(c, m, func(got hq.Pending, found bool) (hq.Pending, bool, error) {
			require.Equal(t, !gone, found, m)
			if found {
				p.Mobile = m
				require.Equal(t, p.Name, got.Name, m)
				require.Equal(t, p.Sends, got.Sends, m)
				require.True(t, p.WindowStart.Equal(got.WindowStart), m)
			}
			return got, !found, nil
		}))
	}
	n, err = es.PurgePending(c, expiredBefore, windowBefore)
	require.NoError(t, err)
	require.Zero(t, n, "a second purge finds nothing")
	// A longer send window (another HQ setting) keeps what it still counts.
	n, err = es.PurgePending(c, now, now.Add(-48*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
}

// testEnrolPurgePendingConcurrent: purges running while every stale
// sign-up is asked for a new code (as by HQ processes sharing the storage)
// lose nothing: each mobile ends with the new code; it is new (found
// false, sends from 1) exactly when a purge took the old record first, so
// the purged count equals the updates that found none, and no update
// fails.
func testEnrolPurgePendingConcurrent(t *testing.T, es hq.EnrolStore) {
	c := ctx(t)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	const n = 60
	mobile := func(i int) string { return fmt.Sprintf("139%08d", i) }
	for i := range n {
		require.NoError(t, es.UpdatePending(c, mobile(i), func(p hq.Pending, _ bool) (hq.Pending, bool, error) {
			p.Name, p.CodeHash, p.Sends = "old", "h", 3
			p.Expires, p.WindowStart = now.Add(-48*time.Hour), now.Add(-48*time.Hour)
			return p, false, nil
		}))
	}
	var purged, updated atomic.Int64
	var wg sync.WaitGroup
	stop, begin := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 8+n)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin // some updates first, so both orders happen
			for {
				k, err := es.PurgePending(c, now.Add(-24*time.Hour), now.Add(-time.Hour))
				purged.Add(int64(k))
				if err != nil {
					errs <- err
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	found := make([]bool, n)
	var uw sync.WaitGroup
	for w := range 4 {
		uw.Add(1)
		go func() {
			defer uw.Done()
			for i := w; i < n; i += 4 {
				errs <- es.UpdatePending(c, mobile(i), func(p hq.Pending, f bool) (hq.Pending, bool, error) {
					found[i] = f // the last call counts (a store may retry)
					p.Name, p.CodeHash, p.Sends = "new", "h2", p.Sends+1
					p.Expires, p.WindowStart = now.Add(5*time.Minute), now
					return p, false, nil
				})
				if updated.Add(1) == n/4 {
					close(begin)
				}
			}
		}()
	}
	uw.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	notFound := 0
	for i := range n {
		if !found[i] {
			notFound++
		}
		require.NoError(t, es.UpdatePending(c, mobile(i), func(p hq.Pending, f bool) (hq.Pending, bool, error) {
			require.True(t, f, "%s was lost", mobile(i))
			require.Equal(t, "new", p.Name)
			want := 4
			if !found[i] {
				want = 1
			}
			require.Equal(t, want, p.Sends, mobile(i))
			return p, false, nil
		}))
	}
	require.EqualValues(t, notFound, purged.Load(), "purged records are exactly those the updates found gone")
	t.Logf("%d of %d stale records purged before their update", notFound, n)
}

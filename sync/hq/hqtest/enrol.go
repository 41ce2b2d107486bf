package hqtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

// RunEnrol is the self-enrolment storage suite: both stores must pass it.
// open returns a fresh, empty store; the suite closes it.
func RunEnrol(t *testing.T, open func(t *testing.T) hq.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, es hq.EnrolStore)
	}{
		{"Pending", testEnrolPending},
		{"PendingConcurrent", testEnrolPendingConcurrent},
		{"CardLinks", testEnrolCardLinks},
		{"WebEnrolment", testEnrolWebEnrolment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t)
			defer st.Close()
			es, ok := st.(hq.EnrolStore)
			require.True(t, ok, "%T does not implement hq.EnrolStore", st)
			tc.fn(t, es)
		})
	}
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

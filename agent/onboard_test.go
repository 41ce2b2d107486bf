package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/wire"
)

// TestNewTillOnboardsBySnapshotLoad: a new till (a real agent with an empty
// ledger) takes HQ's members through the ledger's bulk load. A snapshot cut
// midway leaves no cursor and no load files behind; the next pull takes it
// whole, after which every member is in the ledger and found by mobile.
func TestNewTillOnboardsBySnapshotLoad(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	h := startCatchupHQ(t, st)
	tok1, err := h.srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store 1", "Asia/Shanghai")
	require.NoError(t, err)
	tok2, err := h.srv.IssueCredential(ctx, hq.RoleStore, "S2", "Store 2", "Asia/Shanghai")
	require.NoError(t, err)

	// Store 1 enrols the members; HQ holds them once its uploads are in.
	const n = 300
	s1 := startTill(t, "S1", h.ts.URL, tok1)
	at := time.Now().Add(-time.Hour)
	for i := range n {
		_, err := s1.a.Ledger().Enrol(ctx, ledger.EnrolRequest{Till: "T1", Key: fmt.Sprintf("enrol-%d", i), Cashier: "c1",
			Member: entry.Member{ID: fmt.Sprintf("B%04d", i), Name: "会员", Mobile: fmt.Sprintf("1370000%04d", i)}, At: at})
		require.NoError(t, err)
	}
	s1.syncUntil(t, "S1's enrolments reach HQ", func() bool {
		if s1.summary(t).Backlog != 0 {
			return false
		}
		_, err := h.st.Member(ctx, fmt.Sprintf("B%04d", n-1))
		return err == nil
	})

	// Store 2's HQ link cuts the snapshot stream halfway while cut is set.
	cut := &snapshotCutter{next: h.srv}
	cut.set(true)
	front := httptest.NewServer(cut)
	t.Cleanup(front.Close)
	s2 := startTill(t, "S2", front.URL, tok2)
	led2 := s2.a.Ledger()
	deadline := time.Now().Add(cuWait)
	for cut.count() < 2 { // the first round, and a sync now's
		s2.do(t, "POST", "/v1/sync/now", nil)
		require.False(t, time.Now().After(deadline), "the till never asked for a snapshot")
		time.Sleep(20 * time.Millisecond)
	}
	sum := s2.summary(t)
	require.NotEmpty(t, sum.LastError, "a cut snapshot is a failed sync")
	cur, err := led2.SyncCursor()
	require.NoError(t, err)
	require.Empty(t, cur, "a cut snapshot stores no cursor")
	left, err := filepath.Glob(led2.Path() + ".load-*")
	require.NoError(t, err)
	require.Empty(t, left, "a cut load removes its sorted runs")

	// The link heals: the next pull takes the whole snapshot.
	cut.set(false)
	before := cut.count()
	s2.syncUntil(t, "S2 onboards from HQ's snapshot", func() bool {
		c, err := led2.SyncCursor()
		return err == nil && c != ""
	})
	for i := range n {
		id := fmt.Sprintf("B%04d", i)
		v, err := led2.Member(id)
		require.NoError(t, err, id)
		require.Equal(t, id, v.Member.ID)
		require.Zero(t, v.PointsPending)
	}
	var m api.MemberSummary
	s2.post(t, "/v1/members/lookup", map[string]any{"mobile": fmt.Sprintf("1370000%04d", n/2)}, &m)
	require.Equal(t, fmt.Sprintf("B%04d", n/2), m.Member.ID, "a loaded member is found by mobile")
	left, err = filepath.Glob(led2.Path() + ".load-*")
	require.NoError(t, err)
	require.Empty(t, left)

	// Later changes come with the feed after the snapshot's cursor.
	_, err = s1.a.Ledger().Enrol(ctx, ledger.EnrolRequest{Till: "T1", Key: "enrol-late", Cashier: "c1",
		Member: entry.Member{ID: "B9999", Name: "会员", Mobile: "13799999999"}, At: at})
	require.NoError(t, err)
	s1.syncUntil(t, "the late enrolment reaches HQ", func() bool { return s1.summary(t).Backlog == 0 })
	s2.syncUntil(t, "S2 pulls the late enrolment", func() bool {
		_, err := led2.Member("B9999")
		return err == nil
	})
	require.Equal(t, before+1, cut.count(), "one whole snapshot, none after the cursor was stored")
}

// snapshotCutter serves HQ, and while set ends every snapshot response
// after half of its bytes by aborting the connection.
type snapshotCutter struct {
	next http.Handler
	mu   sync.Mutex
	on   bool
	cuts int // snapshot requests seen
}

func (c *snapshotCutter) set(on bool) {
	c.mu.Lock()
	c.on = on
	c.mu.Unlock()
}

func (c *snapshotCutter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

func (c *snapshotCutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wire.PathSnapshot {
		c.next.ServeHTTP(w, r)
		return
	}
	c.mu.Lock()
	c.cuts++
	on := c.on
	c.mu.Unlock()
	if !on {
		c.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	b := rec.Body.Bytes()
	_, _ = w.Write(b[:len(b)/2])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler) // the till sees the stream end midway
}

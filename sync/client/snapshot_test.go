package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/wire"
)

// cutWriter drops the connection once more than max bytes were written.
type cutWriter struct {
	http.ResponseWriter
	max, n int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.n+len(p) > c.max {
		p = p[:c.max-c.n]
		n, _ := c.ResponseWriter.Write(p)
		c.n += n
		rc := http.NewResponseController(c.ResponseWriter)
		_ = rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			_ = conn.Close()
		}
		return n, http.ErrHijacked
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += n
	return n, err
}

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// A till with no cursor takes HQ's members in one snapshot; the first one
// is cut halfway and must leave no cursor, the second is taken from
// scratch, and the feed continues after it with only what changed since.
func TestSnapshotCutMidwayIsTakenAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	tok, err := srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)

	hqTill := &hqtest.Till{Store: "S2", Till: "T1"}
	const members = 3000
	for b := 0; b < members/500; b++ {
		var es []entry.Entry
		for i := range 500 {
			es = append(es, hqTill.Enrol(fmt.Sprintf("M%05d", b*500+i), hqtest.T0))
		}
		_, err := st.Ingest(ctx, hqtest.Batch(es...))
		require.NoError(t, err)
	}

	var snapshots, pages atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case wire.PathSnapshot:
			if snapshots.Add(1) == 1 {
				w = &cutWriter{ResponseWriter: w, max: 4 << 10}
			}
		case wire.PathChanges:
			pages.Add(1)
		}
		srv.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	in := memstore.New("S1")
	c, err := client.New(client.Config{URL: ts.URL, Token: tok, Store: "S1", RequestTimeout: 5 * time.Second}, in, in, nil)
	require.NoError(t, err)

	err = c.SyncNow(ctx)
	require.Error(t, err, "a cut snapshot is a failed pull")
	cur, err := in.SyncCursor()
	require.NoError(t, err)
	require.Empty(t, cur, "no cursor after a cut snapshot")
	require.Less(t, in.Members(), members, "the cut came before the end")
	require.Zero(t, pages.Load(), "no feed page before a whole snapshot")

	require.NoError(t, c.SyncNow(ctx))
	require.EqualValues(t, 2, snapshots.Load())
	cur, err = in.SyncCursor()
	require.NoError(t, err)
	require.NotEmpty(t, cur)
	require.Equal(t, members, in.Members())

	// Changes after the snapshot come with the feed, not another snapshot.
	_, err = st.Ingest(ctx, hqtest.Batch(hqTill.TopUp("M00007", hqtest.T0, 300, 0)))
	require.NoError(t, err)
	before := c.Status().MembersApplied
	require.NoError(t, c.SyncNow(ctx))
	require.EqualValues(t, 2, snapshots.Load())
	require.EqualValues(t, 1, c.Status().MembersApplied-before, "only the changed member comes with the feed")
	m, ok := in.Member("M00007")
	require.True(t, ok)
	require.EqualValues(t, 300, m.StoredValue)
	require.NoError(t, st.Members(ctx, func(hm hq.Member) error {
		got, ok := in.Member(hm.ID)
		require.True(t, ok, hm.ID)
		require.Equal(t, hm.State(), got)
		return nil
	}))
}

// snapshotHQ is a bbolt HQ holding n enrolled members and a store
// credential for S1.
func snapshotHQ(t *testing.T, n int) (*hq.Server, hq.Store, string) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	tok, err := srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)
	hqTill := &hqtest.Till{Store: "S2", Till: "T1"}
	for b := 0; b < n; b += 500 {
		var es []entry.Entry
		for i := b; i < min(b+500, n); i++ {
			es = append(es, hqTill.Enrol(fmt.Sprintf("M%05d", i), hqtest.T0))
		}
		_, err := st.Ingest(ctx, hqtest.Batch(es...))
		require.NoError(t, err)
	}
	_, err = st.Ingest(ctx, hqtest.Batch(hqTill.TopUp("M00003", hqtest.T0, 250, 0)))
	require.NoError(t, err)
	return srv, st, tok
}

// requireHQMembers: the till holds exactly HQ's member states.
func requireHQMembers(t *testing.T, st hq.Store, in *memstore.Store) {
	n := 0
	require.NoError(t, st.Members(context.Background(), func(hm hq.Member) error {
		got, ok := in.Member(hm.ID)
		require.True(t, ok, hm.ID)
		require.Equal(t, hm.State(), got)
		n++
		return nil
	}))
	require.Equal(t, n, in.Members())
}

// The binary stream and the JSON one of an HQ that predates it give a
// till the same members; a client that does not ask for binary gets JSON.
func TestSnapshotBinaryAndJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, st, tok := snapshotHQ(t, 2500)
	var types []string
	oldHQ := false
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathSnapshot && oldHQ {
			r.Header.Del("Accept")
		}
		rec := &typeRecorder{ResponseWriter: w}
		srv.ServeHTTP(rec, r)
		if r.URL.Path == wire.PathSnapshot {
			types = append(types, rec.Header().Get("Content-Type"))
		}
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	for _, old := range []bool{false, true} {
		oldHQ = old
		in := memstore.New("S1")
		c, err := client.New(client.Config{URL: ts.URL, Token: tok, Store: "S1"}, in, in, nil)
		require.NoError(t, err)
		require.NoError(t, c.SyncNow(ctx))
		requireHQMembers(t, st, in)
	}
	require.Equal(t, []string{wire.SnapshotBinary, "application/x-ndjson"}, types)

	// An older till, asking for nothing in particular.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+wire.PathSnapshot, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req) // the transport asks for gzip and inflates
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	dec := json.NewDecoder(resp.Body)
	n := 0
	for {
		var l wire.SnapshotLine
		require.NoError(t, dec.Decode(&l))
		if l.End != nil {
			require.EqualValues(t, n, l.End.Members)
			break
		}
		n++
	}
	require.Equal(t, 2500, n)
}

type typeRecorder struct{ http.ResponseWriter }

func (r *typeRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// slowInbox takes its time over each bulk apply, or fails it.
type slowInbox struct {
	*memstore.Store
	delay time.Duration
	fail  error
}

func (s slowInbox) ApplyMemberStates(ms []wire.MemberState) error {
	time.Sleep(s.delay)
	if s.fail != nil {
		return s.fail
	}
	return s.Store.ApplyMemberStates(ms)
}

// The read stops while the apply catches up; that pause is not HQ's
// silence, so an apply slower than RequestTimeout does not cut the
// snapshot. A failed apply ends it cleanly with no cursor.
func TestSnapshotSlowAndFailingApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer client.SetSnapshotApply(1000)()
	srv, st, tok := snapshotHQ(t, 2500)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	in := memstore.New("S1")
	c, err := client.New(client.Config{URL: ts.URL, Token: tok, Store: "S1", RequestTimeout: 2 * time.Second}, in, slowInbox{Store: in, delay: 3 * time.Second}, nil)
	require.NoError(t, err)
	require.NoError(t, c.SyncNow(ctx))
	requireHQMembers(t, st, in)
	cur, err := in.SyncCursor()
	require.NoError(t, err)
	require.NotEmpty(t, cur)

	in = memstore.New("S1")
	c, err = client.New(client.Config{URL: ts.URL, Token: tok, Store: "S1"}, in, slowInbox{Store: in, fail: errors.New("disk full")}, nil)
	require.NoError(t, err)
	err = c.SyncNow(ctx)
	require.ErrorContains(t, err, "disk full")
	cur, err = in.SyncCursor()
	require.NoError(t, err)
	require.Empty(t, cur)
}

// loaderInbox takes snapshots as one bulk load, held back until Finish.
type loaderInbox struct {
	*memstore.Store
	finished, aborted *atomic.Int32
}

type memLoad struct {
	in      loaderInbox
	pending []wire.MemberState
	done    bool
}

func (in loaderInbox) LoadSnapshot() (client.SnapshotLoad, error) { return &memLoad{in: in}, nil }

func (l *memLoad) Add(ms []wire.MemberState) error {
	l.pending = append(l.pending, ms...)
	return nil
}

func (l *memLoad) Finish() error {
	l.done = true
	l.in.finished.Add(1)
	return l.in.Store.ApplyMemberStates(l.pending)
}

func (l *memLoad) Abort() {
	if !l.done {
		l.in.aborted.Add(1)
	}
}

// An inbox that loads snapshots in bulk gets the whole snapshot through
// its load and Finish; a cut one is aborted, not finished.
func TestSnapshotBulkLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer client.SetSnapshotApply(1000)()
	srv, st, tok := snapshotHQ(t, 2500)
	var snapshots atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathSnapshot && snapshots.Add(1) == 1 {
			w = &cutWriter{ResponseWriter: w, max: 2 << 10}
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	in := loaderInbox{Store: memstore.New("S1"), finished: new(atomic.Int32), aborted: new(atomic.Int32)}
	c, err := client.New(client.Config{URL: ts.URL, Token: tok, Store: "S1", RequestTimeout: 5 * time.Second}, in, in, nil)
	require.NoError(t, err)
	require.Error(t, c.SyncNow(ctx))
	require.EqualValues(t, 0, in.finished.Load())
	require.EqualValues(t, 1, in.aborted.Load())
	require.Zero(t, in.Members())

	require.NoError(t, c.SyncNow(ctx))
	require.EqualValues(t, 1, in.finished.Load())
	require.EqualValues(t, 1, in.aborted.Load())
	requireHQMembers(t, st, in.Store)
}

package client_test

import (
	"context"
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

package pg_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

func TestSnapshot(t *testing.T) {
	testURL(t)
	hqtest.Snapshot(t, func(t *testing.T) hq.Store { return open(t) })
}

// A snapshot taken while an older transaction is still open and a newer
// one has committed: the snapshot holds the newer one's change (above its
// xmin) and not the older one's. The feed from its cursor must hand out
// the older one's member once it commits, and not the newer one's again.
func TestSnapshotAroundTransactionsInFlight(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 8, PruneEvery: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	t1 := &hqtest.Till{Store: "S1", Till: "T1"}
	t2 := &hqtest.Till{Store: "S1", Till: "T2"}
	_, err = st.Ingest(ctx, hqtest.Batch(t1.Enrol("MA", hqtest.T0), t1.Enrol("MB", hqtest.T0)))
	require.NoError(t, err)

	// The older transaction takes its xid first and stays open.
	older, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = older.Rollback(ctx) }()
	_, err = pg.IngestTx(ctx, older, hqtest.Batch(t1.TopUp("MA", hqtest.T0, 100, 0)))
	require.NoError(t, err)
	// The newer one commits.
	_, err = st.Ingest(ctx, hqtest.Batch(t2.TopUp("MB", hqtest.T0, 200, 0)))
	require.NoError(t, err)

	held := map[string]wire.MemberState{}
	cur, err := st.Snapshot(ctx, func(m wire.MemberState) error { held[m.Member.ID] = m; return nil })
	require.NoError(t, err)
	require.EqualValues(t, 0, held["MA"].StoredValue, "the open transaction is not in the snapshot")
	require.EqualValues(t, 200, held["MB"].StoredValue, "the committed one is")

	// Nothing new for the feed while the older one is open.
	ch, err := st.Changes(ctx, cur, 10)
	require.NoError(t, err)
	require.Empty(t, ch.Members, "the feed repeats what the snapshot held")
	cur = ch.Cursor

	require.NoError(t, older.Commit(ctx))
	// The feed waits for every older transaction on the server (another
	// test's too), so poll.
	var got []wire.MemberState
	hqtest.Eventually(t, "the open transaction's member in the feed", func() bool {
		ch, err := st.Changes(ctx, cur, 10)
		require.NoError(t, err)
		got = append(got, ch.Members...)
		cur = ch.Cursor
		return len(got) > 0 && !ch.More
	})
	require.Len(t, got, 1, "exactly the member the open transaction changed: %+v", got)
	require.Equal(t, "MA", got[0].Member.ID)
	require.EqualValues(t, 100, got[0].StoredValue)

	// A later change of the member the snapshot held comes with the feed.
	_, err = st.Ingest(ctx, hqtest.Batch(t2.TopUp("MB", hqtest.T0, 50, 0)))
	require.NoError(t, err)
	got = nil
	hqtest.Eventually(t, "the later change in the feed", func() bool {
		ch, err := st.Changes(ctx, cur, 10)
		require.NoError(t, err)
		got = append(got, ch.Members...)
		cur = ch.Cursor
		return len(got) > 0 && !ch.More
	})
	require.Len(t, got, 1)
	require.EqualValues(t, 250, got[0].StoredValue)
}

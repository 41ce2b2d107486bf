package pg_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// TestFeedsIgnoreOtherTransactions: transactions that cannot write this
// HQ's feeds — one elsewhere on the server holding an xid, another HQ's
// upload in another schema — do not hold back its member feed or export,
// while an upload of its own that is still open holds back what commits
// after it until it ends.
func TestFeedsIgnoreOtherTransactions(t *testing.T) {
	base := testURL(t)
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 8, PruneEvery: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	_, u2 := freshSchema(t)
	other, err := pg.Open(ctx, u2, pg.Options{MaxConns: 4, PruneEvery: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })

	// Open for the whole test: a writing transaction on the server...
	ext, err := pgx.Connect(ctx, base)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ext.Close(context.Background()) })
	extTx, err := ext.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = extTx.Rollback(context.Background()) }()
	var x uint64
	require.NoError(t, extTx.QueryRow(ctx, `SELECT pg_current_xact_id()`).Scan(&x))
	// ...and another HQ's upload.
	otx, err := other.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = otx.Rollback(context.Background()) }()
	o := &hqtest.Till{Store: "S9", Till: "T9"}
	_, err = pg.IngestTx(ctx, otx, hqtest.Batch(o.Enrol("OX", hqtest.T0)))
	require.NoError(t, err)

	t1 := &hqtest.Till{Store: "S1", Till: "T1"}
	t2 := &hqtest.Till{Store: "S1", Till: "T2"}
	_, err = st.Ingest(ctx, hqtest.Batch(t1.Enrol("MA", hqtest.T0), t1.Enrol("MB", hqtest.T0)))
	require.NoError(t, err)

	ch, err := st.Changes(ctx, "", 10)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"MA", "MB"}, memberIDs(ch.Members), "committed members are in the feed while other transactions run")
	ex, err := st.Export(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, ex.Entries, 2, "committed entries are in the export while other transactions run")
	cur, xcur := ch.Cursor, ex.Cursor

	// An upload of this HQ that began first and is still open holds back
	// the one that commits after it.
	own, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = own.Rollback(context.Background()) }()
	_, err = pg.IngestTx(ctx, own, hqtest.Batch(t1.TopUp("MA", hqtest.T0, 100, 0)))
	require.NoError(t, err)
	_, err = st.Ingest(ctx, hqtest.Batch(t2.TopUp("MB", hqtest.T0, 200, 0)))
	require.NoError(t, err)
	ch, err = st.Changes(ctx, cur, 10)
	require.NoError(t, err)
	require.Empty(t, ch.Members, "nothing past an open upload of this HQ")
	cur = ch.Cursor
	ex, err = st.Export(ctx, xcur, 10)
	require.NoError(t, err)
	require.Empty(t, ex.Entries)
	xcur = ex.Cursor

	require.NoError(t, own.Commit(ctx))
	ch, err = st.Changes(ctx, cur, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"MA", "MB"}, memberIDs(ch.Members), "both, once, in commit order")
	ex, err = st.Export(ctx, xcur, 10)
	require.NoError(t, err)
	require.Len(t, ex.Entries, 2)
	require.Equal(t, "T1", ex.Entries[0].Till)
	require.Equal(t, "T2", ex.Entries[1].Till)
	ch, err = st.Changes(ctx, ch.Cursor, 10)
	require.NoError(t, err)
	require.Empty(t, ch.Members)
	require.False(t, ch.More)
}

func memberIDs(ms []wire.MemberState) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Member.ID)
	}
	return out
}

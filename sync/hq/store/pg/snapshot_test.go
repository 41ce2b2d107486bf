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

// The snapshot reads members' fields out of their data in SQL; every
// state must equal the one HQ makes from the whole record, whatever the
// data holds (no data yet, escapes, other text, coupons used or not).
func TestSnapshotStatesEqualMembers(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{PruneEvery: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	coupons := `[{"id":"C1","member_id":"M3","name":"满100减10","threshold":10000,"value":1000,"skus":["A","B"],"valid_from":"2026-01-01T00:00:00Z","valid_until":"2026-12-31T00:00:00Z","known":true,"uses":0,"restores":0},
		{"id":"C2","member_id":"M3","name":"used","threshold":0,"value":500,"valid_from":"2026-01-01T00:00:00Z","valid_until":"2026-12-31T00:00:00Z","known":true,"uses":1,"restores":0},
		{"id":"C3","member_id":"M3","name":"unknown","threshold":0,"value":500,"valid_from":"2026-01-01T00:00:00Z","valid_until":"2026-12-31T00:00:00Z","known":false,"uses":0,"restores":0}]`
	for _, r := range []struct{ id, data, coupons string }{
		{"M1", `{"id":"M1","name":"Ann","tier":"gold","card_tokens":["aa","bb"],"enrolled_at":"2026-01-01T00:00:00Z"}`, `[]`},
		{"M2", ``, `[]`}, // no enrolment yet
		{"M3", `{"id":"M3","name":"王 \"q\" \\ \u0001","mobile":"13800000000","birthday":"02-29","tier":"silver","referrer_id":"M1","card_tokens":["a\"b","c\\d","\u00e9"],"enrolled_at":"2026-01-01T08:00:00+08:00","extra":1}`, coupons},
		{"M4", `{"id":"M4","name":"","card_tokens":[],"birthday":null}`, `[]`},
		{"M5", `{"id":"M5","name":"x","card_tokens":null}`, `[]`},
		{"M6", `{"id":"M6","name":"y","card_tokens":[ "p" , "q" ]}`, `[]`},
	} {
		_, err := st.Pool().Exec(ctx, `INSERT INTO members (id, data, points, stored_value, flagged, last_sale, coupons)
			VALUES ($1, nullif($2, '')::jsonb, 7, -3, $1 = 'M3', CASE WHEN $1 = 'M1' THEN '2026-03-01T10:00:00+08:00'::timestamptz END, $3::jsonb)`, r.id, r.data, r.coupons)
		require.NoError(t, err, r.id)
	}
	want := map[string]wire.MemberState{}
	require.NoError(t, st.Members(ctx, func(m hq.Member) error { want[m.ID] = m.State(); return nil }))
	got := map[string]wire.MemberState{}
	_, err = st.Snapshot(ctx, func(m wire.MemberState) error { got[m.Member.ID] = m; return nil })
	require.NoError(t, err)
	require.Len(t, want, 6)
	require.Equal(t, want, got)
	require.Len(t, got["M3"].Coupons, 1, "only the known, unused coupon")
	require.Equal(t, []string{"a\"b", "c\\d", "é"}, got["M3"].Member.CardTokens)
}

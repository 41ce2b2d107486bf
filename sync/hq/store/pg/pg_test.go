package pg_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/pg"
)

// testURL is the server to test against, or a skip with what to set.
func testURL(t *testing.T) string { t.Helper(); return hqtest.PostgresURL(t) }

// freshSchema is the URL of a new, empty schema dropped at test end, and a
// context for the test's setup.
func freshSchema(t *testing.T) (context.Context, string) {
	base := testURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	u, drop, err := pg.FreshSchema(ctx, base, "hqtest_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	return ctx, u
}

func open(t *testing.T) *pg.Store {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 8})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	testURL(t)
	hqtest.Run(t, func(t *testing.T) hq.Store { return open(t) })
}

func TestIdentityFeed(t *testing.T) {
	testURL(t)
	hqtest.RunIdentityFeed(t, func(t *testing.T) hq.Store {
		ctx, u := freshSchema(t)
		st, err := pg.Open(ctx, u, pg.Options{MaxConns: 8, IdentityFeed: true})
		require.NoError(t, err)
		return st
	})
}

func TestMigrationsAreRecordedAndRerunSafely(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	v, err := st.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, latestMigration(t), v)
	st.Close()
	st, err = pg.Open(ctx, u, pg.Options{}) // already migrated: a no-op
	require.NoError(t, err)
	_, err = st.Pool().Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future.sql')`)
	require.NoError(t, err)
	st.Close()
	_, err = pg.Open(ctx, u, pg.Options{})
	require.ErrorContains(t, err, "newer than this hq knows")
}

// TestMigrationBelowTheHighestIsApplied: a database that has a migration
// numbered above one it lacks (two lines of work landing out of order) gets
// the missing one on Open, not skipped because a higher one is recorded.
func TestMigrationBelowTheHighestIsApplied(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	for _, q := range []string{
		`DROP TABLE web_enrolments, card_links, enrol_pending`,
		`DELETE FROM schema_migrations WHERE version = 11`,
	} {
		_, err := st.Pool().Exec(ctx, q)
		require.NoError(t, err)
	}
	st.Close()
	st, err = pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st.Close()
	var n int
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = 11`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM card_links`).Scan(&n))
}

// TestSchemaOneUpgrades: a database left at schema 1 by an older hq is
// migrated on Open, and its flagged members can be listed and reviewed.
func TestSchemaOneUpgrades(t *testing.T) {
	ctx, u := freshSchema(t)
	v1, err := os.ReadFile("migrations/0001_init.sql")
	require.NoError(t, err)
	c, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	for _, q := range []string{
		string(v1),
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')`,
		`INSERT INTO members (id, points, stored_value, flagged) VALUES ('M1', 10, -500, true), ('M2', 5, 0, false)`,
		`INSERT INTO credentials (role, id, token_hash, created_at) VALUES ('admin', 'ops', '` + hq.HashToken("old") + `', now())`,
	} {
		_, err := c.Exec(ctx, q)
		require.NoError(t, err)
	}
	require.NoError(t, c.Close(ctx))

	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st.Close()
	v, err := st.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, latestMigration(t), v)
	cred, err := st.CredentialByHash(ctx, hq.HashToken("old"))
	require.NoError(t, err)
	require.Empty(t, cred.Rights, "a credential from before rights has none")
	flagged, err := st.FlaggedMembers(ctx)
	require.NoError(t, err)
	require.Len(t, flagged, 1)
	require.Equal(t, "M1", flagged[0].ID)
	require.Empty(t, flagged[0].Reviews)
	m, err := st.ReviewMember(ctx, "M1", hq.Review{By: "ops", At: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	require.False(t, m.Flagged)
	require.Equal(t, []hq.Review{{By: "ops", At: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Points: 10, StoredValue: -500}}, m.Reviews)
}

// TestExportNeverSkipsOutOfOrderCommit holds an ingest transaction open
// while a later one (with higher row ids) commits. A plain id cursor would
// hand out the later rows and then move past the earlier ones for good;
// the xid cursor holds the later rows back until the earlier commits.
func TestExportNeverSkipsOutOfOrderCommit(t *testing.T) {
	st := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	first := &hqtest.Till{Store: "S1", Till: "T1"}
	_, err := st.Ingest(ctx, hqtest.Batch(first.Sale("M0", t0, 100, 1, 0, 0, "")))
	require.NoError(t, err)

	seen := map[string]int{}
	pull := func(cursor string) string {
		for {
			p, err := st.Export(ctx, cursor, 2)
			require.NoError(t, err)
			for _, e := range p.Entries {
				seen[e.ID()]++
			}
			cursor = p.Cursor
			if !p.More {
				return cursor
			}
		}
	}
	cur := ""
	hqtest.Eventually(t, "the first entry", func() bool { cur = pull(cur); return len(seen) == 1 })
	require.Equal(t, map[string]int{"S1/T1/1": 1}, seen)

	// A: begins first and takes the lower ids, but stays open.
	a := &hqtest.Till{Store: "S1", Till: "TA"}
	txA, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	defer txA.Rollback(ctx)
	_, err = pg.IngestTx(ctx, txA, hqtest.Batch(a.Sale("M1", t0, 100, 1, 0, 0, ""), a.Sale("M1", t0, 100, 1, 0, 0, "")))
	require.NoError(t, err)

	// B: later, higher ids, commits first.
	b := &hqtest.Till{Store: "S1", Till: "TB"}
	_, err = st.Ingest(ctx, hqtest.Batch(b.Sale("M2", t0, 100, 1, 0, 0, ""), b.Sale("M2", t0, 100, 1, 0, 0, "")))
	require.NoError(t, err)

	var maxA, minB int64
	require.NoError(t, txA.QueryRow(ctx, `SELECT max(id) FROM entries WHERE till = 'TA'`).Scan(&maxA))
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT min(id) FROM entries WHERE till = 'TB'`).Scan(&minB))
	require.Less(t, maxA, minB, "the open transaction holds the lower ids: a plain id cursor would skip them")

	cur = pull(cur)
	require.Zero(t, seen["S1/TB/1"], "rows committed behind an open transaction are held back")
	require.Zero(t, seen["S1/TA/1"])

	require.NoError(t, txA.Commit(ctx))
	hqtest.Eventually(t, "all five entries", func() bool { cur = pull(cur); return len(seen) >= 5 })
	require.Equal(t, map[string]int{"S1/T1/1": 1, "S1/TA/1": 1, "S1/TA/2": 1, "S1/TB/1": 1, "S1/TB/2": 1}, seen,
		"after the commit every row arrives exactly once")
}

// TestChangesNeverSkipOutOfOrderCommit is the same for the member feed.
func TestChangesNeverSkipOutOfOrderCommit(t *testing.T) {
	st := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	_, cur := pullChanges(t, st, "")

	a := &hqtest.Till{Store: "S1", Till: "TA"}
	txA, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	defer txA.Rollback(ctx)
	_, err = pg.IngestTx(ctx, txA, hqtest.Batch(a.Points("MA", t0, 5, "correction")))
	require.NoError(t, err)
	b := &hqtest.Till{Store: "S1", Till: "TB"}
	_, err = st.Ingest(ctx, hqtest.Batch(b.Points("MB", t0, 7, "correction")))
	require.NoError(t, err)

	got, cur := pullChanges(t, st, cur)
	require.Empty(t, got)
	require.NoError(t, txA.Commit(ctx))
	all := map[string]int64{}
	hqtest.Eventually(t, "both members", func() bool {
		got, cur = pullChanges(t, st, cur)
		for k, v := range got {
			_, dup := all[k]
			require.False(t, dup, "member %s repeated", k)
			all[k] = v
		}
		return len(all) >= 2
	})
	require.Equal(t, map[string]int64{"MA": 5, "MB": 7}, all)
}

func pullChanges(t *testing.T, st *pg.Store, cur string) (map[string]int64, string) {
	got := map[string]int64{}
	for {
		ch, err := st.Changes(context.Background(), cur, 1)
		require.NoError(t, err)
		for _, m := range ch.Members {
			_, dup := got[m.Member.ID]
			require.False(t, dup)
			got[m.Member.ID] = m.Points
		}
		cur = ch.Cursor
		if !ch.More {
			return got, cur
		}
	}
}

// TestChangesFeedOverManyTransactions: members changed again and again over
// more transactions than the feed reads at once, the log pruned on the way.
// Followed from the start, the feed hands every member out once with its
// last state; followed along the way, a reader's last copy of each member is
// its last state. Pruned, the log holds one id a member.
func TestChangesFeedOverManyTransactions(t *testing.T) {
	st := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	want := map[string]int64{}
	follower, fcur := map[string]int64{}, ""
	for i := 0; i < 45; i++ {
		a, b := fmt.Sprintf("M%d", i%7), fmt.Sprintf("M%d", (i*3+1)%11)
		_, err := st.Ingest(ctx, hqtest.Batch(tl.Points(a, t0, int64(i+1), "x"), tl.Points(b, t0, 2, "y")))
		require.NoError(t, err)
		want[a] += int64(i + 1)
		want[b] += 2
		if i%4 == 0 {
			var got map[string]int64
			got, fcur = pullChanges(t, st, fcur)
			maps.Copy(follower, got)
		}
		if i == 22 {
			_, err := st.PruneChanges(ctx)
			require.NoError(t, err)
		}
	}
	var rows, ids int
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*), sum(cardinality(ids)) FROM member_changes`).Scan(&rows, &ids))
	require.Greater(t, ids, len(want), "the test needs superseded entries to prune")
	// Another transaction on the server holds pruning back until it ends.
	hqtest.Eventually(t, "one log entry a member", func() bool {
		_, err := st.PruneChanges(ctx)
		require.NoError(t, err)
		require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*), sum(cardinality(ids)) FROM member_changes`).Scan(&rows, &ids))
		return ids == len(want)
	})
	hqtest.Eventually(t, "every member from the start, once", func() bool {
		got, _ := pullChanges(t, st, "")
		return maps.Equal(got, want)
	})
	hqtest.Eventually(t, "the follower's last copies", func() bool {
		var got map[string]int64
		got, fcur = pullChanges(t, st, fcur)
		maps.Copy(follower, got)
		return maps.Equal(follower, want)
	})
}

func TestOutboxConformance(t *testing.T) {
	testURL(t)
	hqtest.RunOutbox(t, func(t *testing.T) hq.Store { return open(t) })
}

// EnqueueTx and QueueEnqueue write in the caller's transaction: rolled
// back, nothing is stored; committed, the message is there once however
// often written.
func TestEnqueueTxFollowsTheTransaction(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	require.NoError(t, st.SetConsent(ctx, "M1", true, at, "test"))
	m := hqtest.Msg("tx/1", "M1", at)

	tx, err := st.Pool().Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, pg.EnqueueTx(ctx, tx, []messages.Message{m}))
	require.NoError(t, tx.Rollback(ctx))
	ms, err := st.Messages(ctx, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Empty(t, ms, "rolled back with its cause")

	tx, err = st.Pool().Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, pg.EnqueueTx(ctx, tx, []messages.Message{m}))
	b := &pgx.Batch{}
	require.NoError(t, pg.QueueEnqueue(b, []messages.Message{m, hqtest.Msg("tx/2", "M1", at)}))
	require.NoError(t, tx.SendBatch(ctx, b).Close())
	require.NoError(t, tx.Commit(ctx))
	ms, err = st.Messages(ctx, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, []string{"tx/1", "tx/2"}, []string{ms[0].ID, ms[1].ID})

	bad := m
	bad.ID = ""
	require.ErrorContains(t, pg.EnqueueTx(ctx, st.Pool(), []messages.Message{bad}), "lacks id")
	require.NoError(t, pg.EnqueueTx(ctx, st.Pool(), nil))
}

func TestEnrolConformance(t *testing.T) {
	hqtest.RunEnrol(t, func(t *testing.T) hq.Store { return open(t) })
}

// TestLookupNotBehindUploads: with every connection of the store's pool
// held (a busy hour's uploads), a till's member look-up is still answered
// at once, on the look-ups' own connections.
func TestLookupNotBehindUploads(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	_, err = st.Ingest(ctx, hqtest.Batch(tl.Enrol("M1", hqtest.T0)))
	require.NoError(t, err)
	for range 2 {
		c, err := st.Pool().Acquire(ctx)
		require.NoError(t, err)
		defer c.Release()
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l, err := st.MemberLookup(lctx, "S1", "M1")
	require.NoError(t, err, "the look-up waited for the pool the uploads hold")
	require.Equal(t, map[string]uint64{"T1": 1}, l.Acked)
}

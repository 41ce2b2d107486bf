package pg_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// maxBurn bounds how many transaction ids a test burns on the shared
// POSAGENT_TEST_PG server to reach the next power of ten (~30,000 ids a
// second there); further away, the test is skipped rather than slow.
const maxBurn = 1_000_000

// TestFeedsAcrossXidDigitBoundary syncs entries one transaction after
// another while HQ's transaction ids go from just below a power of ten to
// just above it (one digit more), then follows the export and the member
// feed from the start with pages of every size: every row must arrive
// exactly once, in commit order. Ordered as text, "100000003" sorts before
// "99999990" and a cursor taken from such a page skips the shorter ids.
//
// The ids start below the boundary on a throwaway cluster (initdb, then
// pg_resetwal -x/-e), as on a production HQ crossing 10^8; where no server
// programs are at hand, ids are burned on POSAGENT_TEST_PG up to its next
// power of ten instead.
func TestFeedsAcrossXidDigitBoundary(t *testing.T) {
	for _, c := range []struct {
		name     string
		boundary uint64
	}{
		{"10^8", 100_000_000},
		// Epoch 2 (xid8 above 2^32): 10^10 is epoch 2, xid 1,410,065,408.
		{"10^10 epoch 2", 10_000_000_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			const below = 48 // ids the server starts below the boundary
			url, why := startCluster(t, c.boundary-below)
			boundary := c.boundary
			if why != nil {
				if c.boundary > 1<<32 {
					t.Skipf("needs a throwaway PostgreSQL cluster to set the xid epoch: %v", why)
				}
				t.Logf("no throwaway cluster (%v); burning ids on POSAGENT_TEST_PG", why)
				_, url = freshSchema(t)
				boundary = 0 // the next power of ten above the server's ids
			}
			crossBoundary(t, url, boundary)
		})
	}
}

// currentXid is the server's next transaction id (it takes one itself).
func currentXid(ctx context.Context, t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) uint64 {
	var s string
	require.NoError(t, q.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&s))
	x, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err)
	return x
}

// burn commits n transactions that do nothing but take an id.
func burn(ctx context.Context, t *testing.T, st *pg.Store, n uint64) {
	if n == 0 {
		return
	}
	_, err := st.Pool().Exec(ctx, fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`, n))
	require.NoError(t, err)
}

// crossBoundary runs the test on the store at url; boundary 0 means the
// next power of ten above the server's current id, reached by burning.
func crossBoundary(t *testing.T, url string, boundary uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := pg.Open(ctx, url, pg.Options{MaxConns: 8, PruneEvery: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	const below, above = 24, 24 // ids left below the boundary; transactions above it
	now := currentXid(ctx, t, st.Pool())
	if boundary == 0 {
		boundary = 10
		for boundary <= now+2*below {
			boundary *= 10
		}
		if boundary-now > maxBurn {
			t.Skipf("POSAGENT_TEST_PG is at transaction id %d: burning the %d ids to %d would take too long; "+
				"install the PostgreSQL server programs (initdb, pg_resetwal) for a throwaway cluster", now, boundary-now, boundary)
		}
	}
	require.Less(t, now, boundary-below, "the server must start below the boundary")
	burn(ctx, t, st, boundary-below-now-1)
	t.Logf("transaction ids from %d, crossing %d", currentXid(ctx, t, st.Pool()), boundary)

	// Sync: one batch (transaction) at a time, 1–3 entries each, a new
	// member in every entry and an earlier member again every few batches
	// (it moves to its later change in the feed), a few ids burned between
	// batches so the ids in use are not consecutive.
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	var order []string           // entry ids in commit order
	last := map[string]int{}     // member → batch of its last change
	points := map[string]int64{} // member → expected balance
	var xids []uint64            // each batch's transaction id
	var lo, hi int               // batches below / at or above the boundary
	for i := 0; hi < above; i++ {
		require.Less(t, i, 1000, "the ids never crossed %d", boundary)
		var es []entry.Entry
		for j := 0; j <= i%3; j++ {
			m := fmt.Sprintf("M%03d-%d", i, j)
			if j == 1 && i%4 == 1 {
				m = fmt.Sprintf("M%03d-0", i/2) // an earlier member changes again
			}
			es = append(es, tl.Points(m, t0, int64(i+1), "x"))
			points[m] += int64(i + 1)
			last[m] = i
		}
		_, err := st.Ingest(ctx, hqtest.Batch(es...))
		require.NoError(t, err)
		for _, e := range es {
			order = append(order, e.ID())
		}
		var xs string
		require.NoError(t, st.Pool().QueryRow(ctx, `SELECT xid::text FROM entries WHERE till = $1 AND seq = $2`, tl.Till, int64(es[0].Seq)).Scan(&xs))
		x, err := strconv.ParseUint(xs, 10, 64)
		require.NoError(t, err)
		xids = append(xids, x)
		if x < boundary {
			lo++
		} else {
			hi++
		}
		burn(ctx, t, st, uint64(i%3))
	}
	require.True(t, slices.IsSorted(xids), "batches committed one after another")
	require.GreaterOrEqual(t, lo, 4, "transactions below the boundary")
	t.Logf("%d entries in %d transactions, ids %d..%d", len(order), len(xids), xids[0], xids[len(xids)-1])

	// The feed in commit order: a member at its last change, by id within
	// one transaction.
	var members []string
	for m := range last {
		members = append(members, m)
	}
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i], members[j]
		if last[a] != last[b] {
			return last[a] < last[b]
		}
		return a < b
	})

	// Another transaction on a shared server holds the feeds back until it ends.
	hqtest.Eventually(t, "every row below the snapshot's xmin", func() bool {
		var ok bool
		require.NoError(t, st.Pool().QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot()) > max(xid) FROM entries`).Scan(&ok))
		return ok
	})

	checkExport := func(t *testing.T) {
		for limit := 1; limit <= len(order)+1; limit++ {
			var got []string
			cur := ""
			for page := 0; ; page++ {
				require.LessOrEqual(t, page, len(order), "limit %d: the export does not end", limit)
				p, err := st.Export(ctx, cur, limit)
				require.NoError(t, err)
				require.LessOrEqual(t, len(p.Entries), limit)
				for _, e := range p.Entries {
					got = append(got, e.ID())
				}
				cur = p.Cursor
				if !p.More {
					break
				}
			}
			sameSequence(t, order, got, fmt.Sprintf("export with limit %d", limit))
			p, err := st.Export(ctx, cur, limit)
			require.NoError(t, err)
			require.Empty(t, p.Entries, "limit %d: nothing after the end", limit)
		}
	}
	checkFeed := func(t *testing.T) {
		for limit := 1; limit <= len(members)+1; limit++ {
			var got []string
			cur := ""
			for page := 0; ; page++ {
				// A page reads up to limit log positions, stale ones too;
				// there are no more positions than entries.
				require.LessOrEqual(t, page, len(order), "limit %d: the member feed does not end", limit)
				ch, err := st.Changes(ctx, cur, limit)
				require.NoError(t, err)
				require.LessOrEqual(t, len(ch.Members), limit)
				for _, m := range ch.Members {
					got = append(got, m.Member.ID)
					require.Equal(t, points[m.Member.ID], m.Points, "member %s", m.Member.ID)
				}
				cur = ch.Cursor
				if !ch.More {
					break
				}
			}
			sameSequence(t, members, got, fmt.Sprintf("member feed with limit %d", limit))
			ch, err := st.Changes(ctx, cur, limit)
			require.NoError(t, err)
			require.Empty(t, ch.Members, "limit %d: nothing after the end", limit)
		}
	}
	t.Run("export", checkExport)
	t.Run("member feed", checkFeed)

	// Pruning pages through the log by xid too: in pages of 3 it must
	// reach every row on both sides of the boundary, leaving one id a
	// member, and the feed must still hand out every member.
	t.Run("pruned member feed", func(t *testing.T) {
		defer pg.SetPruneRows(3)()
		var ids int
		hqtest.Eventually(t, "one log entry a member", func() bool {
			_, err := st.PruneChanges(ctx)
			require.NoError(t, err)
			require.NoError(t, st.Pool().QueryRow(ctx, `SELECT sum(cardinality(ids)) FROM member_changes`).Scan(&ids))
			return ids == len(members)
		})
		checkFeed(t)
	})
}

// sameSequence fails unless got is want: every row once, in order. It says
// how many rows were lost or repeated and where the order first differs,
// rather than printing both lists.
func sameSequence(t *testing.T, want, got []string, what string) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	n := map[string]int{}
	for _, s := range got {
		n[s]++
	}
	var missing, repeated int
	for _, s := range want {
		switch {
		case n[s] == 0:
			missing++
		case n[s] > 1:
			repeated++
		}
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	t.Fatalf("%s: %d of %d rows arrived, %d never, %d more than once; first difference at row %d (want %q, got %q)",
		what, len(got), len(want), missing, repeated, i, at(want, i), at(got, i))
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(end)"
}

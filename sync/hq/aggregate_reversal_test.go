package hq_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

// aggStores opens an empty store of each kind (PostgreSQL with
// POSAGENT_TEST_PG only).
func aggStores(t *testing.T) map[string]func(t *testing.T) hq.Store {
	out := map[string]func(t *testing.T) hq.Store{
		"bolt": func(t *testing.T) hq.Store {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	if url := os.Getenv("POSAGENT_TEST_PG"); url != "" {
		out["pg"] = func(t *testing.T) hq.Store {
			ctx := context.Background()
			u, drop, err := pg.FreshSchema(ctx, url, "hq_aggrev_")
			require.NoError(t, err)
			t.Cleanup(func() { _ = drop() })
			st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	return out
}

// TestWalkInReversals: refunds and voids of walk-in sales (no member, no
// points), in the sale's batch, in a later one, before the sale, several
// of one sale, and a refund claiming points the sale never gave: both
// stores agree exactly with a recomputation after every upload, and the
// figures of the members' sales beside them do not move.
func TestWalkInReversals(t *testing.T) {
	for name, open := range aggStores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S1", Till: "T2"}
			at := func(d int) time.Time { return hqtest.T0.AddDate(0, 0, d) }
			up := func(what string, b hq.Batch) {
				t.Helper()
				_, err := st.Ingest(ctx, b)
				require.NoError(t, err, what)
				diffs, err := hq.VerifyAggregates(ctx, st)
				require.NoError(t, err)
				require.Empty(t, diffs, "after %s: the aggregates differ from a recomputation", what)
			}

			en := a.Enrol("M1", at(0))
			m := a.Sale("M1", at(0), 5000, 50, 0, 0, "")
			w1 := a.Sale("", at(0), 999, 0, 0, 0, "")
			up("a walk-in sale voided in its own batch", hqtest.Batch(en, m, w1, a.Void(w1, at(0))))

			w2 := a.Sale("", at(1), 800, 0, 0, 0, "")
			up("a walk-in sale", hqtest.Batch(w2))
			up("its void, later", hqtest.Batch(a.Void(w2, at(1))))

			w3 := a.Sale("", at(2), 700, 0, 0, 0, "")
			up("another walk-in sale", hqtest.Batch(w3))
			up("a partial refund of it at another till", hqtest.Batch(b.Refund(w3, at(3), 300, 0, 0, false)))
			up("the rest refunded", hqtest.Batch(a.Refund(w3, at(4), 400, 0, 0, true)))

			// The void comes from the other till before the sale is uploaded.
			w4 := a.Sale("", at(5), 600, 0, 0, 0, "")
			up("a void before its walk-in sale", hqtest.Batch(b.Void(w4, at(5))))
			up("the voided walk-in sale", hqtest.Batch(w4))

			// Not what a till writes (a walk-in sale gives no points), but
			// valid entry by entry: the figures must still not depend on
			// which store saw the sale or when.
			w5 := a.Sale("", at(6), 500, 0, 0, 0, "")
			up("a walk-in sale before an odd refund", hqtest.Batch(w5))
			up("a refund reversing points the sale never gave", hqtest.Batch(b.Refund(w5, at(7), 100, 9, 4, false)))
			up("the void of that sale", hqtest.Batch(a.Void(w5, at(7))))
			w6 := a.Sale("", at(8), 400, 0, 0, 0, "")
			up("an odd refund before its walk-in sale", hqtest.Batch(b.Refund(w6, at(8), 100, 9, 4, false)))
			up("the walk-in sale after it", hqtest.Batch(w6))

			d := hq.DayOf(hqtest.T0).Month()
			rs, err := st.AggRows(ctx, true, d, d, hq.ScopeStore)
			require.NoError(t, err)
			require.Len(t, rs, 1)
			require.EqualValues(t, 1, rs[0].N[hq.AggMemberSales])
			require.EqualValues(t, 5000, rs[0].N[hq.AggMemberAmount])
			require.EqualValues(t, 50, rs[0].N[hq.AggPointsIssued], "walk-in reversals take no points off")
			require.EqualValues(t, 0, rs[0].N[hq.AggPointsRedeemed])

			// A rebuild ends where the uploads did.
			before, err := st.AggDump(ctx)
			require.NoError(t, err)
			cfg, err := st.AggConfig(ctx)
			require.NoError(t, err)
			require.NoError(t, st.RebuildAggregates(ctx, cfg))
			after, err := st.AggDump(ctx)
			require.NoError(t, err)
			require.Empty(t, hq.CompareAggregates(after, before))
		})
	}
}

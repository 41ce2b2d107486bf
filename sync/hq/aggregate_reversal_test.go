package hq_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
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

// TestReversalsAnyOrder: sales (members' and walk-in, with and without
// points) with voids, partial and full refunds and refunds claiming more
// points than their sale moved, folded in random order and batches by a
// store that keeps only what Keep asks for and, like bbolt or PostgreSQL
// after archiving, does not see walk-in sales that moved no points, end
// with exactly the rows and reversal facts of a recomputation.
func TestReversalsAnyOrder(t *testing.T) {
	cfg := hq.AggConfig{TimeZone: "Asia/Shanghai", AtRiskDays: 10, DormantDays: 25}
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, hqtest.Shanghai)
	at := func(d int) time.Time { return base.AddDate(0, 0, d) }
	r := rand.New(rand.NewPCG(3, 5))
	for round := 0; round < 40; round++ {
		a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"}
		var es []entry.Entry
		for i := 0; i < 30; i++ {
			member := []string{"", "", "M1", "M2"}[r.IntN(4)]
			if member != "" && r.IntN(3) == 0 {
				es = append(es, a.Enrol(member, at(r.IntN(20))))
			}
			var earned, redeem int64
			if member != "" || r.IntN(4) == 0 {
				earned, redeem = int64(r.IntN(3))*10, int64(r.IntN(2))*5
			}
			d := r.IntN(60)
			s := a.Sale(member, at(d), 1000, earned, redeem, 0, "")
			es = append(es, s)
			for k := r.IntN(3); k > 0; k-- {
				switch r.IntN(4) {
				case 0:
					es = append(es, b.Void(s, at(d+1)))
				case 1:
					es = append(es, b.Refund(s, at(d+2), 1000, earned, redeem, true))
				case 2:
					es = append(es, b.Refund(s, at(d+3), 300, earned/2, 0, false))
				default: // more points than the sale moved
					es = append(es, b.Refund(s, at(d+4), 100, earned+7, redeem+3, false))
				}
			}
		}
		r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		want, err := hq.RecomputeAggregates(context.Background(), cfg, func(_ context.Context, fn func(hq.Stored) error) error {
			for _, e := range es {
				if err := fn(hq.Stored{Entry: e}); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, err)

		f := hq.NewAggFacts()
		sum := hq.AggDelta{}
		for rest := es; len(rest) > 0; {
			n := 1 + r.IntN(min(len(rest), 6))
			for k, c := range cfg.Fold(rest[:n], fmt.Sprint("shard", r.IntN(2)), f).Delta {
				s := sum[k]
				if s == nil {
					s = &hq.Counts{}
					sum[k] = s
				}
				for i, v := range c {
					s[i] += v
				}
			}
			rest = rest[n:]
			for id, s := range f.Sales {
				switch {
				case !s.Keep():
					delete(f.Sales, id)
				case s.Member == "" && s.Earned == 0 && s.Redeem == 0:
					rv := s.Reversal() // what such a store can know of it
					f.Sales[id] = &rv
				}
			}
		}
		days, months := sum.Rows()
		got := &hq.AggDump{Config: cfg, Days: days, Months: months, Sales: f.Sales, Members: map[string]*hq.MemberFact{}, Totals: want.Totals}
		for id, m := range f.Members {
			if hq.KeepMember(m) {
				got.Members[id] = m
			}
		}
		require.Empty(t, hq.CompareAggregates(want, got), "round %d", round)
	}
}

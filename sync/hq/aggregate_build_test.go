package hq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// An AggBuilder that settles sales no later entry reverses (a bulk load
// bounding its memory) ends with what a recomputation of the same entries
// holds, and drops the settled sales' facts; settling a sale with a
// reversal keeps its fact.
func TestAggBuilderSettle(t *testing.T) {
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	t0 := time.Date(2025, 3, 3, 11, 0, 0, 0, hqtest.Shanghai)
	var es []entry.Entry
	es = append(es, tl.Enrol("M1", t0), tl.Enrol("M2", t0))
	var sales []entry.Entry
	for i := range 12 {
		s := tl.Sale([]string{"M1", "M2", ""}[i%3], t0.AddDate(0, 0, i*9), 1000+int64(i)*100, 10+int64(i), 0, 0, "")
		sales = append(sales, s)
		es = append(es, s)
	}
	es = append(es, tl.Refund(sales[4], t0.AddDate(0, 0, 40), 700, 7, 0, false), tl.Void(sales[7], t0.AddDate(0, 0, 70)))

	c := hq.DefaultAggConfig
	want, err := hq.RecomputeAggregates(context.Background(), c, func(_ context.Context, fn func(hq.Stored) error) error {
		for _, e := range es {
			if err := fn(hq.Stored{Entry: e}); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)

	b := hq.NewAggBuilder(c)
	b.Add(es[:8])
	b.Settle(sales[0].ID()) // never reversed
	b.Settle(sales[1].ID())
	b.Add(es[8:])
	b.Settle(sales[4].ID()) // refunded: kept
	b.Settle(sales[10].ID())
	got := b.Dump()
	require.Empty(t, hq.CompareAggregates(want, got))
	for _, s := range []entry.Entry{sales[0], sales[1], sales[10]} {
		require.Nil(t, got.Sales[s.ID()], "settled sale %s", s.ID())
		require.NotNil(t, want.Sales[s.ID()], "a member sale's fact is kept by a recomputation")
	}
	require.NotNil(t, got.Sales[sales[4].ID()])
	require.NotNil(t, got.Sales[sales[7].ID()])
}

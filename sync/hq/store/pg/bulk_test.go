package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// TestBulkLoadMatchesFold: a year's history written with CopyEntries (into
// a partition per month received) and aggregates written by LoadAggregates
// from an hq.AggBuilder fold of the same entries hold exactly what the
// store's own fold (RebuildAggregates through SQL) builds from the stored
// entries, and the KPI reports of a full and an empty month agree.
func TestBulkLoadMatchesFold(t *testing.T) {
	_, u := freshSchema(t)
	// Longer than freshSchema's: the rebuild through SQL takes a while
	// on a busy machine under the race detector.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := pg.Open(ctx, u, pg.Options{PruneEvery: -1})
	require.NoError(t, err)
	defer st.Close()

	next := kpiHistory(12_000)
	b := hq.NewAggBuilder(hq.DefaultAggConfig)
	var es []entry.Entry
	var received []time.Time
	flush := func() {
		require.NoError(t, st.CopyEntries(ctx, es, received))
		b.Add(es)
		es, received = es[:0], received[:0]
	}
	for e, ok := next(); ok; e, ok = next() {
		es, received = append(es, e), append(received, e.At.Add(7*time.Minute))
		if len(es) == 1000 {
			flush()
		}
	}
	flush()
	require.NoError(t, st.LoadAggregates(ctx, b.Dump()))

	var parts int
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'entries'::regclass
		AND (SELECT count(*) FROM entries) = 12000`).Scan(&parts))
	require.GreaterOrEqual(t, parts, 12, "a partition per month received, every entry stored")
	hqtest.VerifyAggregates(t, st)

	now := time.Date(2026, 5, 15, 12, 0, 0, 0, hqtest.Shanghai)
	srv := hq.NewServer(st, hq.Options{Now: func() time.Time { return now }})
	loaded, err := st.AggDump(ctx)
	require.NoError(t, err)
	full, err := srv.KPIs(ctx, "2025-06")
	require.NoError(t, err)
	require.Positive(t, full.Chain.MemberSales)
	empty, err := srv.KPIs(ctx, "2024-06")
	require.NoError(t, err)

	require.NoError(t, st.RebuildAggregates(ctx, hq.DefaultAggConfig))
	folded, err := st.AggDump(ctx)
	require.NoError(t, err)
	require.Empty(t, hq.CompareAggregates(folded, loaded))
	full2, err := srv.KPIs(ctx, "2025-06")
	require.NoError(t, err)
	empty2, err := srv.KPIs(ctx, "2024-06")
	require.NoError(t, err)
	require.Equal(t, full2, full)
	require.Equal(t, empty2, empty)
}

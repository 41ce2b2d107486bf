package pg_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// TestAggregatesBuiltOnUpgrade: a database migrated to 5 whose aggregates
// were never built (entries stored by an older hq) gets them built from
// the entries by the first hq that opens it.
func TestAggregatesBuiltOnUpgrade(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	enrol := a.Enrol("M1", hqtest.T0)
	s := a.Sale("M1", hqtest.T0, 5000, 50, 0, 0, "")
	_, err = st.Ingest(ctx, hqtest.Batch(enrol, s, a.Sale("M1", hqtest.T0, 700, 7, 0, 0, ""), a.Void(s, hqtest.T0)))
	require.NoError(t, err)
	_, err = st.Pool().Exec(ctx, `TRUNCATE agg_days, agg_months, agg_sales, agg_members; UPDATE agg_config SET built = false`)
	require.NoError(t, err)
	st.Close()

	st, err = pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st.Close()
	hqtest.VerifyAggregates(t, st)
	d := hq.DayOf(hqtest.T0).Month()
	rs, err := st.AggRows(ctx, true, d, d, hq.ScopeStore)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.EqualValues(t, 1, rs[0].N[hq.AggMemberSales], "the voided sale is not counted")
	require.EqualValues(t, 700, rs[0].N[hq.AggMemberAmount])
}

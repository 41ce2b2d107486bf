package pg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
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

// TestMigration6MovesVisits: a database at migration 5, whose member facts
// hold every visit in one jsonb value and which has no entry totals, is
// brought to month records and totals by migration 6, and the aggregates
// then agree exactly with a recomputation from the entries.
func TestMigration6MovesVisits(t *testing.T) {
	ctx, ua := freshSchema(t)
	a, err := pg.Open(ctx, ua, pg.Options{})
	require.NoError(t, err)
	defer a.Close()
	tills := []*hqtest.Till{{Store: "S1", Till: "T1"}, {Store: "S2", Till: "T1"}, {Store: "S3", Till: "T2"}}
	var es []entry.Entry
	for m := 0; m < 6; m++ {
		id := fmt.Sprint("M", m)
		if m%3 > 0 {
			es = append(es, tills[m%3].Enrol(id, hqtest.T0.AddDate(0, -2, m)))
		}
		for k := 0; k < 25; k++ {
			tl := tills[(m+k)%3]
			s := tl.Sale(id, hqtest.T0.AddDate(0, 0, k*7+m), 1000+int64(k), 10, 0, 0, "")
			es = append(es, s)
			if k%5 == 0 {
				es = append(es, tl.Refund(s, hqtest.T0.AddDate(0, 0, k*7+m+1), 1000+int64(k), 10, 0, true))
			}
		}
	}
	by := map[string][]entry.Entry{}
	for _, e := range es {
		by[e.Store+"/"+e.Till] = append(by[e.Store+"/"+e.Till], e)
	}
	for _, tes := range by {
		_, err := a.Ingest(ctx, hqtest.Batch(tes...))
		require.NoError(t, err)
	}
	hqtest.VerifyAggregates(t, a)
	dump, err := a.AggDump(ctx)
	require.NoError(t, err)
	wantTotals, err := a.AggTotals(ctx)
	require.NoError(t, err)

	// A database at migration 5 holding the same entries and aggregates,
	// member facts in the form of migration 5.
	_, ub := freshSchema(t)
	c, err := pgx.Connect(ctx, ub)
	require.NoError(t, err)
	defer c.Close(ctx)
	var schemaA string
	require.NoError(t, a.Pool().QueryRow(ctx, `SELECT current_schema()`).Scan(&schemaA))
	_, err = c.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(t, err)
	files, err := filepath.Glob("migrations/000[1-5]_*.sql")
	require.NoError(t, err)
	require.Len(t, files, 5)
	for i, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = c.Exec(ctx, string(b))
		require.NoError(t, err, f)
		_, err = c.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, filepath.Base(f))
		require.NoError(t, err)
	}
	from := pgx.Identifier{schemaA}.Sanitize()
	for _, q := range []string{
		`INSERT INTO entries (store, till, seq, kind, member_id, at, received_at, body)
			SELECT store, till, seq, kind, member_id, at, received_at, body FROM ` + from + `.entries`,
		`INSERT INTO agg_days SELECT * FROM ` + from + `.agg_days`,
		// Lifetime rows came with migration 24, which sums them.
		`INSERT INTO agg_months SELECT * FROM ` + from + `.agg_months WHERE day < ` + fmt.Sprint(int32(hq.LifetimeDay)),
		`INSERT INTO agg_sales SELECT * FROM ` + from + `.agg_sales`,
		`UPDATE agg_config SET config = (SELECT config FROM ` + from + `.agg_config), built = true`,
	} {
		_, err := c.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	moved := 0
	for id, m := range dump.Members {
		old := hq.MemberFact{Enrolled: m.Enrolled, EnrolDay: m.EnrolDay, Home: m.Home, Visits: m.Visits}
		b, err := json.Marshal(old)
		require.NoError(t, err)
		_, err = c.Exec(ctx, `INSERT INTO agg_members (id, fact) VALUES ($1, $2)`, id, b)
		require.NoError(t, err)
		moved += len(m.Visits)
	}
	require.Positive(t, moved)

	b, err := pg.Open(ctx, ub, pg.Options{})
	require.NoError(t, err)
	defer b.Close()
	hqtest.VerifyAggregates(t, b)
	got, err := b.AggDump(ctx)
	require.NoError(t, err)
	require.Empty(t, hq.CompareAggregates(dump, got))
	gotTotals, err := b.AggTotals(ctx)
	require.NoError(t, err)
	require.Equal(t, wantTotals, gotTotals)
}

// TestReversalsOfArchivedWalkInSales: refunds and voids of walk-in sales
// whose month is archived (PostgreSQL keeps nothing of such a sale) agree
// with a recomputation that reads the archive, as they do before it.
func TestReversalsOfArchivedWalkInSales(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S1", Till: "T2"}
	jan := time.Date(2026, 1, 10, 3, 0, 0, 0, time.UTC)
	en, m := a.Enrol("M1", jan), a.Sale("M1", jan, 5000, 50, 0, 0, "")
	w1, w2, w3 := a.Sale("", jan, 900, 0, 0, 0, ""), a.Sale("", jan, 800, 0, 0, 0, ""), a.Sale("", jan, 700, 0, 0, 0, "")
	ingest(t, st, received(jan, en, m, w1, w2, w3))
	ingest(t, st, received(jan.Add(time.Hour), b.Refund(w3, jan.Add(time.Hour), 100, 0, 0, false)))
	feb := jan.AddDate(0, 1, 0)
	ingest(t, st, received(feb, a.Sale("", feb, 600, 0, 0, 0, "")))
	require.Empty(t, verifyNone(t, st, ""))

	dir := t.TempDir()
	as, err := hq.ArchiveBefore(ctx, st, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), dir, time.Now())
	require.NoError(t, err)
	require.Len(t, as, 1)

	now := time.Now().UTC()
	ingest(t, st, received(now, b.Refund(w1, now, 300, 0, 0, false), b.Void(w2, now), b.Refund(w3, now, 600, 0, 0, true)))
	require.Empty(t, verifyNone(t, st, dir))
	// Points a walk-in sale never gave cannot be taken back from it.
	ingest(t, st, received(now, b.Refund(w1, now, 100, 9, 4, false), b.Refund(m, now, 1000, 10, 0, false)))
	require.Empty(t, verifyNone(t, st, dir))
	ms, err := st.AggRows(ctx, true, hq.DayOf(jan).Month(), hq.DayOf(jan).Month(), hq.ScopeStore)
	require.NoError(t, err)
	var sum hq.Counts
	for _, r := range ms {
		for i, v := range r.N {
			sum[i] += v
		}
	}
	require.EqualValues(t, 1, sum[hq.AggMemberSales])
	require.EqualValues(t, 4000, sum[hq.AggMemberAmount])
	require.EqualValues(t, 40, sum[hq.AggPointsIssued])
	require.EqualValues(t, 0, sum[hq.AggPointsRedeemed])
}

// TestWrapAdd: the counters add in SQL as int64s add in Go, wrapping at
// either end, whether the sum fits a bigint or not.
func TestWrapAdd(t *testing.T) {
	st := open(t)
	const hi, lo = int64(math.MaxInt64), int64(math.MinInt64)
	q := `SELECT ` + pg.WrapSQL("$1::int8", "$2::int8")
	for _, c := range [][2]int64{{0, 0}, {5, 0}, {0, -5}, {5, 7}, {-5, -7}, {hi, 0}, {hi, 1}, {hi, hi}, {lo, -1}, {lo, lo}, {lo, hi},
		{hi - 3, 3}, {hi - 3, 4}, {lo + 3, -3}, {lo + 3, -4}, {-1, lo}, {1, hi}, {hi, -1}, {lo, 1}} {
		var got int64
		require.NoError(t, st.Pool().QueryRow(t.Context(), q, c[0], c[1]).Scan(&got))
		require.Equal(t, c[0]+c[1], got, "%d + %d", c[0], c[1])
	}
}

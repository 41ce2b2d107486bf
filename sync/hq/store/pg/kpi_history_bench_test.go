package pg_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// rowCounter counts the aggregate rows a report reads.
type rowCounter struct {
	hq.Store
	rows atomic.Int64
}

func (c *rowCounter) AggRows(ctx context.Context, months bool, from, to hq.Day, scopes ...string) ([]hq.AggRow, error) {
	rs, err := c.Store.AggRows(ctx, months, from, to, scopes...)
	c.rows.Add(int64(len(rs)))
	return rs, err
}

// TestKPIHistoryBench prints what the current month's /kpi costs on
// PostgreSQL as the history kept grows (3, 12, 36 months of the same
// chain: POSAGENT_HQ_BENCH_STORES stores [1000] of two tills, each till
// enrolling a member a month who buys, and an earlier member coming
// back), next to the life-cycle read a report made before the lifetime
// rows (every earlier month's store rows). Gated: POSAGENT_HQ_BENCH=1.
func TestKPIHistoryBench(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") == "" {
		t.Skip("set POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG) to run the KPI history benchmark")
	}
	stores := 1000
	if v := os.Getenv("POSAGENT_HQ_BENCH_STORES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		require.Positive(t, n)
		stores = n
	}
	start := time.Date(2023, 7, 1, 10, 0, 0, 0, hqtest.Shanghai)
	type result struct {
		months, entries           int
		report                    time.Duration
		reportRows                int64
		forward                   time.Duration
		forwardRows, lifetimeRows int
	}
	var out []result
	for _, months := range []int{3, 12, 36} {
		_, u := freshSchema(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		st, err := pg.Open(ctx, u, pg.Options{MaxConns: 8})
		require.NoError(t, err)

		// Each till's history in one batch, 8 tills at a time.
		work := make(chan hq.Batch)
		var wg sync.WaitGroup
		var failed atomic.Value
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range work {
					if _, err := st.Ingest(ctx, b); err != nil {
						failed.Store(err)
					}
				}
			}()
		}
		entries := 0
		for s := 0; s < stores; s++ {
			for k := 0; k < 2; k++ {
				tl := &hqtest.Till{Store: fmt.Sprintf("S%04d", s), Till: fmt.Sprintf("T%d", k)}
				var es []entry.Entry
				for m := 0; m < months; m++ {
					at := start.AddDate(0, m, k)
					id := fmt.Sprintf("M%04d-%d-%d", s, k, m)
					es = append(es, tl.Enrol(id, at), tl.Sale(id, at.AddDate(0, 0, 1), 3000, 30, 0, 0, ""))
					if m >= 2 {
						es = append(es, tl.Sale(fmt.Sprintf("M%04d-%d-%d", s, k, m-2), at.AddDate(0, 0, 3), 2000, 20, 0, 0, ""))
					}
				}
				entries += len(es)
				work <- hqtest.Batch(es...)
			}
		}
		close(work)
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}

		now := start.AddDate(0, months-1, 14)
		c := &rowCounter{Store: st}
		srv := hq.NewServer(c, hq.Options{Now: func() time.Time { return now }})
		_, err = srv.KPIs(ctx, "") // builds nothing, warms the plans
		require.NoError(t, err)
		var reps, fwds []time.Duration
		var rows int64
		month := hq.DayOf(now).Month()
		var fwdRows, lifeRows int
		for i := 0; i < 5; i++ {
			c.rows.Store(0)
			t0 := time.Now()
			rep, err := srv.KPIs(ctx, "")
			require.NoError(t, err)
			reps = append(reps, time.Since(t0))
			rows = c.rows.Load()
			require.EqualValues(t, stores*2*months, rep.Chain.Members)

			// The life-cycle read a report made before the lifetime rows.
			t0 = time.Now()
			fr, err := st.AggRows(ctx, true, hq.Day(-1<<30), month-1, hq.ScopeStore)
			require.NoError(t, err)
			fwds = append(fwds, time.Since(t0))
			fwdRows = len(fr)
			lr, err := st.AggRows(ctx, true, hq.LifetimeDay, hq.LifetimeDay, hq.ScopeStore)
			require.NoError(t, err)
			lifeRows = len(lr)
		}
		slices.Sort(reps)
		slices.Sort(fwds)
		out = append(out, result{months: months, entries: entries, report: reps[2], reportRows: rows,
			forward: fwds[2], forwardRows: fwdRows, lifetimeRows: lifeRows})
		require.NoError(t, st.Close())
		cancel()
	}
	fmt.Printf("current month's /kpi on PostgreSQL, %d stores × 2 tills, median of 5:\n", stores)
	fmt.Printf("%8s %9s %12s %14s %14s %22s\n", "months", "entries", "report", "rows read", "lifetime rows", "before: life read, rows")
	for _, r := range out {
		fmt.Printf("%8d %9d %12v %14d %14d %12v %9d\n", r.months, r.entries, r.report.Round(10*time.Microsecond), r.reportRows, r.lifetimeRows, r.forward.Round(10*time.Microsecond), r.forwardRows)
	}
	first, last := out[0], out[len(out)-1]
	fmt.Printf("report at %d vs %d months: %.2f× the time, %.2f× the rows (before: the life read alone was %.2f× the rows)\n",
		last.months, first.months, float64(last.report)/float64(first.report), float64(last.reportRows)/float64(first.reportRows),
		float64(last.forwardRows)/float64(max(first.forwardRows, 1)))
}

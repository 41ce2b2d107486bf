package pg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// TestIngestVsCopy prints HQ's ingest rate into PostgreSQL next to a raw
// COPY of the same rows into a table of the same shape, in the same run.
// Gated: POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG); POSAGENT_HQ_BENCH_ROUNDS
// sets the number of measured pairs [5].
//
// A shared box drifts, so the two are measured in pairs of rounds whose
// order alternates, and the figure is the median of the pairs' ratios. Every
// round uploads new tills (the same rows for both sides), so the two tables
// grow alike and ingest never sees a duplicate; members are the same 5,000
// throughout, as at a real HQ. One warm-up pair is not counted.
func TestIngestVsCopy(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") != "1" {
		t.Skip("benchmark: set POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG) to run")
	}
	env := func(name string, def int) int {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, name)
			require.Positive(t, n, name)
			return n
		}
		return def
	}
	rounds := env("POSAGENT_HQ_BENCH_ROUNDS", 5)
	// A store's till uploads what it wrote since its last upload: 500 is
	// the sync client's batch limit, a few entries the usual upload of a
	// till online all day (POSAGENT_HQ_BENCH_BATCH shows its fixed cost).
	batchSize := env("POSAGENT_HQ_BENCH_BATCH", 500)
	ctx := context.Background()
	// The store's connections carry a name, so the CPU their PostgreSQL
	// backends use can be told from other clients'.
	_, u := freshSchema(t)
	app := fmt.Sprintf("hqbench%d", os.Getpid())
	st, err := pg.Open(ctx, u+"&application_name="+app, pg.Options{MaxConns: 8})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cpu := func() map[int]time.Duration { return benchCPU(t, st, app) }
	const tills, perTill, members, writers = 40, 1250, 5000, 4 // 50,000 entries a round
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	// round r's uploads: per till, its batches in order.
	round := func(r int) [][]hq.Batch {
		byTill := make([][]hq.Batch, tills)
		for i := 0; i < tills; i++ {
			tl := &hqtest.Till{Store: fmt.Sprintf("R%dS%03d", r, i/2), Till: fmt.Sprintf("T%d", i%2)}
			var es []entry.Entry
			for j := 0; j < perTill; j++ {
				es = append(es, tl.Sale(fmt.Sprintf("M%05d", (i*perTill+j)*7%members), t0.Add(time.Duration(j)*time.Minute), 1000+int64(j%50)*100, 10+int64(j%50), 0, 0, ""))
			}
			for k := 0; k < len(es); k += batchSize {
				byTill[i] = append(byTill[i], hqtest.Batch(es[k:min(k+batchSize, len(es))]...))
			}
		}
		return byTill
	}
	total := tills * perTill

	// Raw COPY: the same rows (JSON encoding included, as ingest does it)
	// into a copy of the entries table, one transaction per 500 rows, the
	// same number of writers.
	_, err = st.Pool().Exec(ctx, `CREATE TABLE raw_entries (LIKE entries INCLUDING ALL)`)
	require.NoError(t, err)
	cols := []string{"store", "till", "seq", "kind", "member_id", "at", "received_at", "body"}
	rawCopy := func(b hq.Batch) error {
		rows := make([][]any, len(b.Items))
		for i, it := range b.Items {
			e := it.Entry
			body, err := json.Marshal(e)
			if err != nil {
				return err
			}
			rows[i] = []any{e.Store, e.Till, int64(e.Seq), string(e.Kind), e.MemberID, e.At, b.ReceivedAt, body}
		}
		return pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_entries"}, cols, pgx.CopyFromRows(rows))
			return err
		})
	}
	ingest := func(b hq.Batch) error {
		_, err := st.Ingest(ctx, b)
		return err
	}
	var spent time.Duration // CPU of the last run: this process and the store's backends
	run := func(byTill [][]hq.Batch, fn func(hq.Batch) error) time.Duration {
		c0 := cpu()
		defer func() { spent = cpuSince(c0, cpu()) }()
		start := time.Now()
		work := make(chan []hq.Batch)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for bs := range work {
					for _, b := range bs { // a till uploads one batch at a time
						if err := fn(b); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		for _, bs := range byTill {
			work <- bs
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		return time.Since(start)
	}
	rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() }
	var ratios, copyRates, ingestRates, cpuRatios, ingestCPU []float64
	for r := 0; r <= rounds; r++ {
		data := round(r)
		var dCopy, dIngest, cCopy, cIngest time.Duration
		if r%2 == 0 {
			dCopy, cCopy = run(data, rawCopy), spent
			dIngest, cIngest = run(data, ingest), spent
		} else {
			dIngest, cIngest = run(data, ingest), spent
			dCopy, cCopy = run(data, rawCopy), spent
		}
		if r == 0 {
			continue // warm-up: plans, pool, first member rows
		}
		ratios = append(ratios, rate(dIngest)/rate(dCopy))
		copyRates = append(copyRates, rate(dCopy))
		ingestRates = append(ingestRates, rate(dIngest))
		cpuRatios = append(cpuRatios, float64(cCopy)/float64(cIngest))
		ingestCPU = append(ingestCPU, float64(cIngest.Microseconds())/float64(total))
		per := func(c time.Duration) float64 { return float64(c.Microseconds()) / float64(total) }
		t.Logf("round %d: raw COPY %6.0f/s, HQ ingest %6.0f/s, ratio %.2f×; CPU per entry (client + backends): COPY %.0f µs, ingest %.0f µs, ratio %.2f×",
			r, rate(dCopy), rate(dIngest), ratios[len(ratios)-1], per(cCopy), per(cIngest), cpuRatios[len(cpuRatios)-1])
	}
	var n int64
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM entries`).Scan(&n))
	require.EqualValues(t, total*(rounds+1), n)
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM raw_entries`).Scan(&n))
	require.EqualValues(t, total*(rounds+1), n)

	median := func(xs []float64) float64 {
		ys := append([]float64(nil), xs...)
		sort.Float64s(ys)
		if len(ys)%2 == 1 {
			return ys[len(ys)/2]
		}
		return (ys[len(ys)/2-1] + ys[len(ys)/2]) / 2
	}
	t.Logf("entries=%d a round, batch=%d writers=%d, %d measured pairs", total, batchSize, writers, rounds)
	t.Logf("CPU (client + backends): ingest %.1f µs per entry, %.2f ms per upload of %d (median)", median(ingestCPU), median(ingestCPU)*float64(batchSize)/1000, batchSize)
	t.Logf("raw COPY:   %8.0f entries/s (median)", median(copyRates))
	t.Logf("HQ ingest:  %8.0f entries/s (median)  (dedupe + COPY + balances + till ack)", median(ingestRates))
	t.Logf("ratio ingest/COPY: %.2f× median of pairs, min %.2f×, max %.2f× (target ≥ 0.70×)", median(ratios), slices.Min(ratios), slices.Max(ratios))
	t.Logf("CPU ratio COPY/ingest (the rate ratio a box with CPU to spare would show): %.2f× median, min %.2f×, max %.2f×", median(cpuRatios), slices.Min(cpuRatios), slices.Max(cpuRatios))
	fmt.Printf("HQ ingest vs raw COPY: %.0f vs %.0f entries/s, median ratio of %d pairs %.2f×; by CPU per entry %.2f×\n", median(ingestRates), median(copyRates), rounds, median(ratios), median(cpuRatios))

	// Where ingest's extra work goes: the rows each table had written
	// (inserted, updated or deleted) per entry stored. The backends report
	// their counts when they end, so the store is closed first.
	var schema string
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT current_schema()`).Scan(&schema))
	require.NoError(t, st.Close())
	c, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer c.Close(ctx)
	var written [][2]any
	for try := 0; try < 50; try++ { // the counts arrive within moments of the backends' exit
		rows, err := c.Query(ctx, `SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables
			WHERE schemaname = $1 AND n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY 2 DESC, 1`, schema)
		require.NoError(t, err)
		written, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]any, error) {
			var name string
			var n int64
			err := r.Scan(&name, &n)
			return [2]any{name, n}, err
		})
		require.NoError(t, err)
		if slices.ContainsFunc(written, func(w [2]any) bool { return w[0] == "entries" && w[1].(int64) >= int64(total*(rounds+1)) }) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	all := int64(0)
	for _, w := range written {
		if w[0] != "raw_entries" {
			all += w[1].(int64)
		}
	}
	stored := float64(total * (rounds + 1))
	fmt.Printf("rows written per entry stored: raw COPY 1.00, ingest %.2f:", float64(all)/stored)
	for _, w := range written {
		if w[0] != "raw_entries" {
			fmt.Printf(" %s %.2f", w[0], float64(w[1].(int64))/stored)
		}
	}
	fmt.Println()
}

// benchCPU reads the CPU time used so far by this process (key 0) and by
// each PostgreSQL backend serving connections named app (key: its pid),
// from /proc. Linux only; elsewhere only this process is counted.
func benchCPU(t *testing.T, st *pg.Store, app string) map[int]time.Duration {
	out := map[int]time.Duration{}
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	out[0] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rows, err := st.Pool().Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // another host, or gone
		}
		// Fields after the command (which may hold spaces): utime and stime
		// are the 12th and 13th, in clock ticks (100 a second).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		out[int(pid)] = time.Duration(ut+stt) * 10 * time.Millisecond
	}
	return out
}

// cpuSince sums the CPU used between two benchCPU readings (a backend
// that started in between counts from 0).
func cpuSince(a, b map[int]time.Duration) time.Duration {
	var d time.Duration
	for k, v := range b {
		d += v - a[k]
	}
	return d
}

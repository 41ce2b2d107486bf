package pg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
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
	rounds := 5
	if v := os.Getenv("POSAGENT_HQ_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "POSAGENT_HQ_BENCH_ROUNDS")
		rounds = n
	}
	st := open(t)
	ctx := context.Background()
	const tills, perTill, batchSize, members, writers = 40, 1250, 500, 5000, 4 // 50,000 entries a round
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
	_, err := st.Pool().Exec(ctx, `CREATE TABLE raw_entries (LIKE entries INCLUDING ALL)`)
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
	run := func(byTill [][]hq.Batch, fn func(hq.Batch) error) time.Duration {
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
	var ratios, copyRates, ingestRates []float64
	for r := 0; r <= rounds; r++ {
		data := round(r)
		var dCopy, dIngest time.Duration
		if r%2 == 0 {
			dCopy = run(data, rawCopy)
			dIngest = run(data, ingest)
		} else {
			dIngest = run(data, ingest)
			dCopy = run(data, rawCopy)
		}
		if r == 0 {
			continue // warm-up: plans, pool, first member rows
		}
		ratios = append(ratios, rate(dIngest)/rate(dCopy))
		copyRates = append(copyRates, rate(dCopy))
		ingestRates = append(ingestRates, rate(dIngest))
		t.Logf("round %d: raw COPY %6.0f/s, HQ ingest %6.0f/s, ratio %.2f×", r, rate(dCopy), rate(dIngest), ratios[len(ratios)-1])
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
	t.Logf("raw COPY:   %8.0f entries/s (median)", median(copyRates))
	t.Logf("HQ ingest:  %8.0f entries/s (median)  (dedupe + COPY + balances + till ack)", median(ingestRates))
	t.Logf("ratio ingest/COPY: %.2f× median of pairs, min %.2f×, max %.2f× (target ≥ 0.70×)", median(ratios), slices.Min(ratios), slices.Max(ratios))
	fmt.Printf("HQ ingest vs raw COPY: %.0f vs %.0f entries/s, median ratio of %d pairs %.2f×\n", median(ingestRates), median(copyRates), rounds, median(ratios))
}

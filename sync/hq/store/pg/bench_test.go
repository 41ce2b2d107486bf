package pg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
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
// Gated: POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG).
func TestIngestVsCopy(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") != "1" {
		t.Skip("benchmark: set POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG) to run")
	}
	st := open(t)
	ctx := context.Background()
	const tills, perTill, batchSize, members, writers = 40, 1250, 500, 5000, 4 // 50,000 entries
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	byTill := make([][]hq.Batch, tills)
	for i := 0; i < tills; i++ {
		tl := &hqtest.Till{Store: fmt.Sprintf("S%03d", i/2), Till: fmt.Sprintf("T%d", i%2)}
		var es []entry.Entry
		for j := 0; j < perTill; j++ {
			es = append(es, tl.Sale(fmt.Sprintf("M%05d", (i*perTill+j)*7%members), t0.Add(time.Duration(j)*time.Minute), 1000+int64(j%50)*100, 10+int64(j%50), 0, 0, ""))
		}
		for k := 0; k < len(es); k += batchSize {
			byTill[i] = append(byTill[i], hqtest.Batch(es[k:min(k+batchSize, len(es))]...))
		}
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
	run := func(fn func(hq.Batch) error) time.Duration {
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
	// Warm up both paths (plans, pool), then measure.
	dCopy := run(rawCopy)
	_, err = st.Pool().Exec(ctx, `TRUNCATE raw_entries`)
	require.NoError(t, err)
	dCopy = run(rawCopy)
	dIngest := run(func(b hq.Batch) error {
		_, err := st.Ingest(ctx, b)
		return err
	})
	var n int64
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM entries`).Scan(&n))
	require.EqualValues(t, total, n)

	copyRate := float64(total) / dCopy.Seconds()
	ingestRate := float64(total) / dIngest.Seconds()
	t.Logf("entries=%d batch=%d writers=%d", total, batchSize, writers)
	t.Logf("raw COPY:   %8.0f entries/s (%v)", copyRate, dCopy.Round(time.Millisecond))
	t.Logf("HQ ingest:  %8.0f entries/s (%v)  (dedupe + COPY + balances + till ack)", ingestRate, dIngest.Round(time.Millisecond))
	t.Logf("ratio ingest/COPY: %.2f× (target ≥ 0.70×)", ingestRate/copyRate)
	fmt.Printf("HQ ingest vs raw COPY: %.0f vs %.0f entries/s = %.2f×\n", ingestRate, copyRate, ingestRate/copyRate)
}

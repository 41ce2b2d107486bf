package pg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
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

// TestKPIBench measures /kpi for a month on PostgreSQL with 100k and 1M
// entries (POSAGENT_HQ_BENCH_ENTRIES=1000000,10000000 for others): a year
// of sales, refunds and voids of 20 stores, one member per two entries.
// The entries are written with COPY and the aggregates built from them
// through the store's fold (RebuildAggregates, 5,000 entries a fold), or,
// with POSAGENT_HQ_BENCH_SEED=ingest, uploaded through the store's ingest
// (batches of 5,000 per till, 8 tills at a time; chain and counter rows
// are then kept per till, as in production), then the report is timed for a full month, a
// month with no sales before the history and a month after it, in this
// process (median of 5, with the heap the report allocates and the peak
// heap sampled while it runs) and as a fresh `posagent hq kpi` process
// (wall time and peak RSS). Gated: POSAGENT_HQ_BENCH=1.
func TestKPIBench(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") == "" {
		t.Skip("set POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG) to run the KPI benchmark")
	}
	base := testURL(t)
	sizes := benchSizes(t, "POSAGENT_HQ_BENCH_ENTRIES", 100_000, 1_000_000)
	seedIngest := os.Getenv("POSAGENT_HQ_BENCH_SEED") == "ingest"
	bin := filepath.Join(t.TempDir(), "posagent")
	build := exec.Command("go", "build", "-o", bin, "posagent/cmd/posagent")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	type result struct {
		entries                   int
		full, empty, after        time.Duration
		procFull, procEmpty       time.Duration
		rssFull, rssEmpty         int64 // KB
		rebuild                   time.Duration
		aggRows, dayRows, factRow int64
		heapPeak, alloc           uint64 // bytes, during the full-month report
	}
	var results []result
	for _, n := range sizes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		u, drop, err := pg.FreshSchema(ctx, base, "hqkpi_")
		require.NoError(t, err)
		st, err := pg.Open(ctx, u, pg.Options{PruneEvery: -1})
		require.NoError(t, err)
		t0 := time.Now()
		if seedIngest {
			ingestHistory(ctx, t, st, n)
		} else {
			copyHistory(ctx, t, st, n)
			t.Logf("%d entries: written in %v", n, time.Since(t0).Round(time.Millisecond))
			require.NoError(t, st.RebuildAggregates(ctx, hq.DefaultAggConfig))
		}
		r := result{entries: n, rebuild: time.Since(t0)}
		t.Logf("%d entries: stored and aggregates built in %v", n, r.rebuild.Round(time.Millisecond))
		require.NoError(t, st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM agg_months), (SELECT count(*) FROM agg_days),
			(SELECT count(*) FROM agg_sales) + (SELECT count(*) FROM agg_members) + (SELECT count(*) FROM agg_visits)`).Scan(&r.aggRows, &r.dayRows, &r.factRow))
		_, err = st.Pool().Exec(ctx, `VACUUM ANALYZE`)
		require.NoError(t, err)

		now := time.Date(2026, 5, 15, 12, 0, 0, 0, hqtest.Shanghai)
		srv := hq.NewServer(st, hq.Options{Now: func() time.Time { return now }})
		var heapPeak, alloc uint64
		timeIt := func(month string) time.Duration {
			var ds []time.Duration
			for i := 0; i < 6; i++ {
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				stop := sampleHeap(&heapPeak)
				s := time.Now()
				rep, err := srv.KPIs(ctx, month)
				d := time.Since(s)
				stop()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if month == "2025-06" {
					alloc = max(alloc, after.TotalAlloc-before.TotalAlloc)
				}
				require.NoError(t, err)
				if i == 0 && month == "2025-06" {
					require.Positive(t, rep.Chain.MemberSales)
				}
				if i > 0 {
					ds = append(ds, d)
				}
			}
			slices.Sort(ds)
			return ds[len(ds)/2]
		}
		r.full = timeIt("2025-06")
		r.heapPeak, r.alloc = heapPeak, alloc
		r.empty, r.after = timeIt("2024-06"), timeIt("2026-03")
		proc := func(month string) (time.Duration, int64) {
			cmd := exec.Command(bin, "hq", "kpi", "--pg", u, "--month", month, "--format", "json")
			cmd.Stdout, cmd.Stderr = nil, os.Stderr
			s := time.Now()
			require.NoError(t, cmd.Run())
			return time.Since(s), cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
		}
		r.procFull, r.rssFull = proc("2025-06")
		r.procEmpty, r.rssEmpty = proc("2024-06")
		results = append(results, r)
		t.Logf("%d entries: /kpi full month %v, empty month %v, month after %v; heap during the report: peak %d KB, allocated %d KB; hq kpi process %v (peak RSS %d MB), empty %v (%d MB); rows: %d month, %d day, %d facts",
			n, r.full, r.empty, r.after, r.heapPeak>>10, r.alloc>>10, r.procFull.Round(time.Millisecond), r.rssFull/1024, r.procEmpty.Round(time.Millisecond), r.rssEmpty/1024, r.aggRows, r.dayRows, r.factRow)
		st.Close()
		require.NoError(t, drop())
		cancel()
	}
	fmt.Println("KPI report on PostgreSQL (before aggregates: 1.7 s at 100k entries, 15-18 s and HQ RSS 785 MB at 1M)")
	fmt.Println("entries     full month  empty month  month after  heap peak  allocated  hq kpi process  peak RSS  stored and built in")
	for _, r := range results {
		fmt.Printf("%-10d  %10v  %11v  %11v  %6d KB  %6d KB  %14v  %5d MB  %v\n", r.entries, r.full.Round(10*time.Microsecond), r.empty.Round(10*time.Microsecond),
			r.after.Round(10*time.Microsecond), r.heapPeak>>10, r.alloc>>10, r.procFull.Round(time.Millisecond), r.rssFull/1024, r.rebuild.Round(time.Second))
	}
	first, last := results[0], results[len(results)-1]
	maxRSS := int64(0)
	for _, r := range results {
		maxRSS = max(maxRSS, r.rssFull, r.rssEmpty)
	}
	fmt.Printf("targets: /kpi < 1 s at %d entries: full %v, empty %v; RSS < 200 MB: %d MB; empty month within 2x of full: %.2fx; %d vs %d entries ratio <= 1.5: full %.2f, empty %.2f\n",
		last.entries, last.full, last.empty, maxRSS/1024, float64(last.empty)/float64(last.full), last.entries, first.entries,
		float64(last.full)/float64(first.full), float64(last.empty)/float64(first.empty))
}

// kpiHistory makes n entries of a year (2025) of 20 stores, two tills each:
// enrolments of n/2 members, sales (some without a member), and a refund
// or void for some sales. next returns them in order, false at the end.
func kpiHistory(n int) (next func() (entry.Entry, bool)) {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	const stores = 20
	tills := make([]*hqtest.Till, stores*2)
	for i := range tills {
		tills[i] = &hqtest.Till{Store: fmt.Sprintf("S%03d", i/2), Till: fmt.Sprintf("T%d", i%2)}
	}
	members := n / 2
	start := time.Date(2025, 1, 1, 10, 0, 0, 0, hqtest.Shanghai)
	at := func(day int) time.Time {
		return start.AddDate(0, 0, day).Add(time.Duration(r.IntN(10*3600)) * time.Second)
	}
	enrolled := 0
	made := 0
	var recent []entry.Entry // sales that may be refunded or voided
	next = func() (entry.Entry, bool) {
		if made >= n {
			return entry.Entry{}, false
		}
		made++
		tl := tills[r.IntN(len(tills))]
		// Enrolments spread over the year ahead of sales.
		if enrolled < members && (made*members/n >= enrolled || enrolled == 0) {
			enrolled++
			return tl.Enrol(fmt.Sprintf("M%07d", enrolled), at(min(364, made*365/n))), true
		}
		day := min(364, made*365/n)
		if k := r.IntN(100); k < 4 && len(recent) > 0 {
			s := recent[r.IntN(len(recent))]
			tl = tillOf(tills, s)
			if k == 0 {
				return tl.Void(s, at(day)), true
			}
			return tl.Refund(s, at(day), s.Sale.Due/2, s.Sale.PointsEarned/2, 0, false), true
		}
		m := ""
		if r.IntN(10) > 0 {
			m = fmt.Sprintf("M%07d", 1+r.IntN(max(1, enrolled)))
		}
		due := 500 + int64(r.IntN(20000))
		s := tl.Sale(m, at(day), due, due/100, 0, 0, "")
		if len(recent) < 1000 {
			recent = append(recent, s)
		} else {
			recent[r.IntN(len(recent))] = s
		}
		return s, true
	}
	return next
}

// ingestHistory uploads kpiHistory(n) through st.Ingest: per till, batches of
// 5,000 in order; 8 workers, each uploading the tills given to it.
func ingestHistory(ctx context.Context, t *testing.T, st *pg.Store, n int) {
	const batch, workers = 5000, 8
	next := kpiHistory(n)
	work := make([]chan []entry.Entry, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range work {
		work[w] = make(chan []entry.Entry, 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for es := range work[w] {
				if _, err := st.Ingest(ctx, hqtest.Batch(es...)); err != nil {
					errs <- err
					for range work[w] { // let the sender finish
					}
					return
				}
			}
		}()
	}
	worker := func(e *entry.Entry) int {
		var h uint32
		for _, c := range e.Store + "/" + e.Till {
			h = h*31 + uint32(c)
		}
		return int(h % workers)
	}
	pending := map[string][]entry.Entry{}
	for {
		e, ok := next()
		if !ok {
			break
		}
		k := e.Store + "/" + e.Till
		pending[k] = append(pending[k], e)
		if len(pending[k]) == batch {
			work[worker(&e)] <- pending[k]
			pending[k] = nil
		}
	}
	for _, es := range pending {
		if len(es) > 0 {
			work[worker(&es[0])] <- es
		}
	}
	for _, c := range work {
		close(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// copyHistory writes kpiHistory(n) straight into entries with COPY.
func copyHistory(ctx context.Context, t *testing.T, st *pg.Store, n int) {
	next := kpiHistory(n)
	received := time.Now().UTC()
	cols := []string{"store", "till", "seq", "kind", "member_id", "at", "received_at", "body"}
	for done := false; !done; {
		err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
			left := 50_000
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"entries"}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if left == 0 {
					return nil, nil
				}
				left--
				e, ok := next()
				if !ok {
					done = true
					return nil, nil
				}
				body, err := json.Marshal(e)
				return []any{e.Store, e.Till, int64(e.Seq), string(e.Kind), e.MemberID, e.At, received, body}, err
			}))
			return err
		})
		require.NoError(t, err)
	}
}

func tillOf(tills []*hqtest.Till, s entry.Entry) *hqtest.Till {
	for _, tl := range tills {
		if tl.Store == s.Store && tl.Till == s.Till {
			return tl
		}
	}
	return tills[0]
}

// sampleHeap records the largest live heap seen into *peak every
// millisecond until the returned func is called.
func sampleHeap(peak *uint64) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		*peak = max(*peak, sample[0].Value.Uint64())
	}
	go func() {
		defer close(ended)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-ended
		read()
	}
}

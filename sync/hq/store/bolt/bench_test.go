package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

// TestIngestConcurrent prints the store's ingest rate (fsync on) with many
// tills uploading at once, as HQ's bounded upload slots feed it: writers
// goroutines, each uploading its tills' batches of 100 sales in order, to
// members drawn from a pool of 200,000 like the load program.
// Gated: POSAGENT_HQ_BENCH=1; POSAGENT_HQ_BENCH_TILLS sets the tills [1000].
//
// Members: "local" as the load program (an upload's 100 sales go to 100
// consecutive member ids, so they share B+tree leaves), "random" as a real
// chain (each sale a member anywhere in the pool).
func TestIngestConcurrent(t *testing.T) {
	for _, pattern := range []string{"local", "random"} {
		t.Run(pattern, func(t *testing.T) { ingestConcurrent(t, pattern == "random") })
	}
}

func ingestConcurrent(t *testing.T, random bool) {
	if os.Getenv("POSAGENT_HQ_BENCH") != "1" {
		t.Skip("benchmark: set POSAGENT_HQ_BENCH=1 to run")
	}
	tills := 1000
	if v := os.Getenv("POSAGENT_HQ_BENCH_TILLS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "POSAGENT_HQ_BENCH_TILLS")
		tills = n
	}
	const writers, batches, size = 64, 5, 100
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{})
	require.NoError(t, err)
	defer st.Close()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	work := make([][]hq.Batch, tills)
	for i := range work {
		tl := &hqtest.Till{Store: fmt.Sprintf("S%04d", i), Till: "T1"}
		for k := 0; k < batches; k++ {
			es := make([]entry.Entry, size)
			for j := range es {
				m := (i*7919 + k*size + j) % 200000
				if random {
					m = (i*batches*size + k*size + j) * 48271 % 200000
				}
				es[j] = tl.Sale(fmt.Sprintf("M%06d", m), t0.Add(time.Duration(k*size+j)*time.Second), 1500, 15, 0, 0, "")
			}
			work[i] = append(work[i], hqtest.Batch(es...))
		}
	}
	next := make(chan int, tills)
	for i := range work {
		next <- i
	}
	close(next)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for _, b := range work[i] {
					s := time.Now()
					if _, err := st.Ingest(context.Background(), b); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(s))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	n := tills * batches * size
	t.Logf("%d tills, %d writers: %d entries in %v, %.0f entries/s, ingest p50 %v p99 %v",
		tills, writers, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
	ts := bolt.DBStats(st).TxStats
	commits, uploads := bolt.Groups(st)
	t.Logf("commits %d (%.1f uploads each), writes %d, pages allocated %d MiB, write+fsync %v, spill %v, rebalance %v",
		commits, float64(uploads)/float64(commits), ts.GetWrite(), ts.GetPageAlloc()>>20, ts.GetWriteTime().Round(time.Millisecond), ts.GetSpillTime().Round(time.Millisecond), ts.GetRebalanceTime().Round(time.Millisecond))
	t.Log(bolt.BucketPages(st))
}

package multitest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIngestScalesWithProcesses prints the entries/s that 20 stores
// uploading at once reach with 1 and with 3 hq serve processes on one
// database (directly and through PgBouncer), all on this machine, and
// the CPU the HQ processes spent per 1,000 entries. The stores, the
// balancer, the HQ processes and PostgreSQL share the box's cores, so the
// figures say what this box can do, not what more cores would.
// Gated: POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG); run without -race.
func TestIngestScalesWithProcesses(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") != "1" {
		t.Skip("benchmark: set POSAGENT_HQ_BENCH=1 (and POSAGENT_TEST_PG) to run")
	}
	p := fleetPlan{stores: 20, tills: 2, waves: 2, perTill: 500, batch: 500, members: 5000, noPull: true}
	total := p.stores * p.tills * p.waves * p.perTill
	forTargets(t, func(t *testing.T, tg target) {
		rates := map[int]float64{}
		for _, n := range []int{1, 3, 1, 3} { // alternated: the box drifts
			// A fresh schema each time, so both start from the same state.
			var hqURL, direct string
			if tg.name == "direct" {
				_, _, direct = freshSchema(t)
				hqURL = direct
			} else {
				hqURL, direct = bouncedSchema(t)
			}
			procs := make([]*hqProc, n)
			for i := range procs {
				procs[i] = startHQ(t, hqURL, true)
			}
			lb := startBalancer(t, procs, false)
			sims := newFleet(t, direct, lb.URL, p)
			start := time.Now()
			runFleet(t, sims, p, lb, 10*time.Minute)
			r := float64(total) / time.Since(start).Seconds()
			require.Zero(t, lb.errors5.Load(), "HQ answered 5xx; the last: %v", lb.last5.Load())
			var cpu time.Duration // what the HQ processes spent, for the box's share
			for _, pr := range procs {
				pr.kill()
				cpu += pr.cmd.ProcessState.UserTime() + pr.cmd.ProcessState.SystemTime()
			}
			t.Logf("%s, %d process(es): %d entries at %.0f entries/s; HQ processes' CPU %.1f ms per 1,000 entries", tg.name, n, total, r,
				float64(cpu.Microseconds())/1000/float64(total)*1000)
			if r > rates[n] {
				rates[n] = r
			}
		}
		fmt.Printf("HQ ingest %s: 1 process %.0f entries/s, 3 processes %.0f entries/s (%.2f×), best of 2 each\n",
			tg.name, rates[1], rates[3], rates[3]/rates[1])
	})
}

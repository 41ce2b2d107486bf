package hq_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// TestFraudCostFigures shows that a month's fraud report costs about the
// same whatever the length of the history before it: it prints the
// report's time for the last month after 2 and after 12 months of
// enrolments and member-code repeats, and fails if the longer history costs more than twice as
// much (plus 20 ms of noise). Gated: POSAGENT_HQ_FRAUD_BENCH=1
// (POSAGENT_HQ_FRAUD_BENCH_PER_MONTH enrolments a month [3000]).
func TestFraudCostFigures(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_FRAUD_BENCH") == "" {
		t.Skip("set POSAGENT_HQ_FRAUD_BENCH=1 to measure the fraud report's cost")
	}
	perMonth := 3000
	if v := os.Getenv("POSAGENT_HQ_FRAUD_BENCH_PER_MONTH"); v != "" {
		_, err := fmt.Sscan(v, &perMonth)
		require.NoError(t, err)
	}
	ctx := context.Background()
	for name, open := range fraudStores(t) {
		t.Run(name, func(t *testing.T) {
			var times [2]time.Duration
			for i, months := range []int{2, 12} {
				st := open(t)
				tills := map[string]*hqtest.Till{}
				batches := map[string][]entry.Entry{}
				flush := func(k string) {
					if len(batches[k]) > 0 {
						_, err := st.Ingest(ctx, hqtest.Batch(batches[k]...))
						require.NoError(t, err)
						batches[k] = nil
					}
				}
				start := time.Date(2025, 1, 1, 9, 0, 0, 0, hqtest.Shanghai)
				n := 0
				t0 := time.Now()
				for m := range months {
					first := start.AddDate(0, m, 0)
					for j := range perMonth { // 5 stores × 4 cashiers, one till each
						n++
						store, cashier := fmt.Sprintf("S%d", j%5), fmt.Sprintf("c%d", j%20)
						k := store + "/" + cashier
						tl := tills[k]
						if tl == nil {
							tl = &hqtest.Till{Store: store, Till: "T" + cashier, Cashier: cashier}
							tills[k] = tl
						}
						at := first.Add(time.Duration(j) * 27 * 24 * time.Hour / time.Duration(perMonth))
						e := tl.Enrol(fmt.Sprintf("M%07d", n), at)
						e.Enrol.Member.Mobile = fmt.Sprintf("13%09d", (n*7919)%1_000_000_000)
						batches[k] = append(batches[k], e, tl.Sale(e.MemberID, at.Add(time.Hour), 1000, 10, 0, 0, ""))
						if len(batches[k]) >= 500 {
							flush(k)
						}
					}
				}
				keys := make([]string, 0, len(batches))
				for k := range batches {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					flush(k)
				}
				// A member code used at a second till for every tenth
				// enrolment, received in its month: the report reads the
				// month's repeats only.
				ms := st.(hq.MemberCodeStore)
				repeats := perMonth / 10
				for m := range months {
					first := start.AddDate(0, m, 0)
					for j := range repeats {
						at := first.Add(time.Duration(j) * 27 * 24 * time.Hour / time.Duration(repeats))
						c := hq.MemberCodeClaim{Code: fmt.Sprintf("code-%d-%d", m, j), Member: fmt.Sprintf("M%07d", m*perMonth+j+1),
							Store: "S1", Till: "Tc1", SeenAt: at, Expires: at.Add(time.Minute), At: at}
						_, _, err := ms.ClaimMemberCode(ctx, c)
						require.NoError(t, err)
						c.Store, c.Till, c.At = "S2", "Tc2", at.Add(time.Second)
						_, rep, err := ms.ClaimMemberCode(ctx, c)
						require.NoError(t, err)
						require.True(t, rep)
					}
				}
				ingest := time.Since(t0)
				srv := hq.NewServer(st, hq.Options{TimeZone: "Asia/Shanghai", Now: func() time.Time { return start.AddDate(1, 1, 0) }})
				month := start.AddDate(0, months-1, 0).Format("2006-01")
				_, err := srv.FraudReport(ctx, month, hq.FraudSettings{}, false) // warm: aggregates, caches
				require.NoError(t, err)
				var best time.Duration
				for r := range 5 {
					t1 := time.Now()
					rep, err := srv.FraudReport(ctx, month, hq.FraudSettings{}, false)
					require.NoError(t, err)
					require.Equal(t, perMonth, rep.Enrolments)
					require.Equal(t, repeats, rep.Repeats)
					if d := time.Since(t1); r == 0 || d < best {
						best = d
					}
				}
				times[i] = best
				fmt.Printf("fraud report %s: %d months of history (%d enrolments, %d entries, %d member-code repeats, ingested in %v): report of %s (%d enrolments, %d repeats) best of 5 %v\n",
					name, months, n, 2*n, months*repeats, ingest.Round(time.Millisecond), month, perMonth, repeats, best.Round(100*time.Microsecond))
			}
			limit := 2*times[0] + 20*time.Millisecond
			fmt.Printf("fraud report %s: 12 months %v vs 2 months %v, limit %v\n", name, times[1].Round(100*time.Microsecond), times[0].Round(100*time.Microsecond), limit.Round(100*time.Microsecond))
			require.LessOrEqual(t, times[1], limit, "the report must not grow with the history")
		})
	}
}

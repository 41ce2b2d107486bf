package multitest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// TestOneTillAtTwoStoresAtOnce: two stores on one database (two HQ
// processes' connection pools) get uploads of one till at the same moment,
// the same batch and overlapping ones; the till's row lock in the database
// applies each entry once, and the later upload is acked as a duplicate.
func TestOneTillAtTwoStoresAtOnce(t *testing.T) {
	forTargets(t, func(t *testing.T, tg target) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var sts [2]*pg.Store
		for i := range sts {
			st, err := pg.Open(ctx, tg.hqURL, pg.Options{MaxConns: 4})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			sts[i] = st
		}
		tl := &hqtest.Till{Store: "S1", Till: "T1"}
		var all []entry.Entry
		at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		// both uploads b0 to sts[0] and b1 to sts[1] at the same moment.
		both := func(b0, b1 hq.Batch) [2]wire.Ack {
			var acks [2]wire.Ack
			var errs [2]error
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, b := range []hq.Batch{b0, b1} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					acks[i], errs[i] = sts[i].Ingest(ctx, b)
				}()
			}
			close(start)
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			return acks
		}
		for round := 0; round < 30; round++ {
			var es []entry.Entry
			for j := 0; j < 15; j++ {
				es = append(es, tl.Sale("M1", at.Add(time.Duration(len(all)+j)*time.Second), 1000, 10+int64(j), 0, 0, ""))
			}
			all = append(all, es...)
			last := es[len(es)-1].Seq
			if round%2 == 0 {
				// The same batch at both: one stores it, the other is told
				// it is a duplicate.
				acks := both(hqtest.Batch(es...), hqtest.Batch(es...))
				require.Equal(t, last, acks[0].Acked)
				require.Equal(t, last, acks[1].Acked)
				require.NotEqual(t, acks[0].Duplicate, acks[1].Duplicate, "round %d: exactly one of the two stores the batch", round)
			} else {
				// Overlapping: the first 10 at one, all 15 at the other.
				acks := both(hqtest.Batch(es[:10]...), hqtest.Batch(es...))
				require.Equal(t, last, acks[1].Acked)
			}
		}
		var pts int64
		for _, e := range all {
			pts += e.PointsDelta
		}
		m, err := sts[0].Member(ctx, "M1")
		require.NoError(t, err)
		require.Equal(t, pts, m.Points, "M1's points: each sale applied once")
		acked, err := sts[1].TillAcked(ctx, "S1", "T1")
		require.NoError(t, err)
		require.Equal(t, tl.Seq, acked)
		n := len(exportAll(t, sts[1], len(all)))
		require.Equal(t, len(all), n, "entries stored")
	})
}

package pg_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/pg"
)

// openBench opens the store on a fresh schema of POSAGENT_TEST_PG.
func openBench(b *testing.B) *pg.Store {
	u := hqtest.PostgresURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	su, drop, err := pg.FreshSchema(ctx, u, "hqbench_")
	require.NoError(b, err)
	b.Cleanup(func() { _ = drop() })
	st, err := pg.Open(ctx, su, pg.Options{MaxConns: 4})
	require.NoError(b, err)
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// BenchmarkOutboxClaimAck: a sender's cost per message (claim in batches
// of 10, ack each), with no history and beside 200,000 sent messages: the
// claim reads the pending index only, so the figures should match.
//
//	POSAGENT_TEST_PG=… go test -run '^$' -bench OutboxClaimAck -benchtime 5000x ./sync/hq/store/pg
func BenchmarkOutboxClaimAck(b *testing.B) {
	for _, history := range []int{0, 200_000} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			st := openBench(b)
			ctx := context.Background()
			at := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
			require.NoError(b, st.SetConsent(ctx, "M1", true, at, "bench"))
			if history > 0 {
				_, err := st.Pool().Exec(ctx, `INSERT INTO outbox (id, kind, member, to_addr, body, created_at, due_at, status, done_at)
					SELECT 'old/' || g, 'after_sale', 'M' || (g % 5000), '13800000000', 'x', $1, $1, 'sent', $1
					FROM generate_series(1, $2) g`, at, history)
				require.NoError(b, err)
				_, err = st.Pool().Exec(ctx, `ANALYZE outbox`)
				require.NoError(b, err)
			}
			for i := 0; i < b.N; i += 1000 {
				var ms []messages.Message
				for j := i; j < min(i+1000, b.N); j++ {
					ms = append(ms, hqtest.Msg(fmt.Sprintf("b/%07d", j), "M1", at))
				}
				require.NoError(b, st.Enqueue(ctx, ms))
			}
			b.ResetTimer()
			done := 0
			for done < b.N {
				cl, err := st.ClaimMessages(ctx, at.Add(time.Hour), time.Minute, 10)
				require.NoError(b, err)
				require.NotEmpty(b, cl)
				for _, c := range cl {
					require.NoError(b, st.AckMessage(ctx, c, at.Add(time.Hour)))
				}
				done += len(cl)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			sent, err := st.Messages(ctx, hq.OutboxFilter{Status: hq.MsgSent, Limit: 1})
			require.NoError(b, err)
			require.Len(b, sent, 1)
		})
	}
}

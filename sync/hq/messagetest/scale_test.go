package messagetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/pg"
)

// TestDayJobScale prints what one day's reminder job costs on PostgreSQL
// at growing member counts, beside a pass over every member: the job's
// time follows the members the day concerns (about 1/365 of them for
// birthdays, those enrolled 60 and 180 days before for recall), not the
// chain's size. Figures only; gated:
//
//	POSAGENT_MSG_BENCH=1 POSAGENT_TEST_PG=… go test -run TestDayJobScale -v ./sync/hq/messagetest/
//
// POSAGENT_MSG_BENCH_MEMBERS=n,… sets the sizes [20000,100000].
func TestDayJobScale(t *testing.T) {
	if os.Getenv("POSAGENT_MSG_BENCH") != "1" {
		t.Skip("figures: set POSAGENT_MSG_BENCH=1 (and POSAGENT_TEST_PG) to run")
	}
	base := hqtest.PostgresURL(t)
	sizes := []int{20000, 100000}
	if v := os.Getenv("POSAGENT_MSG_BENCH_MEMBERS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			require.NoError(t, err, "POSAGENT_MSG_BENCH_MEMBERS")
			sizes = append(sizes, n)
		}
	}
	ctx := context.Background()
	set, err := messages.NewSettings(loyalty.DefaultProgram(), nil)
	require.NoError(t, err)
	for _, n := range sizes {
		u, drop, err := pg.FreshSchema(ctx, base, "msgscale_")
		require.NoError(t, err)
		st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4, PruneEvery: -1})
		require.NoError(t, err)
		st.SetMessageSettings(set)
		// n members enrolled one a minute-ish over 400 days before the
		// job day, birthdays spread over the year, all consenting.
		day := dayOf(2027, 6, 1)
		const per = 1000
		var seq uint64
		for lo := 0; lo < n; lo += per {
			b := hq.Batch{Store: "S1", Till: "T1", First: seq + 1, ReceivedAt: day.t}
			var ids []string
			for i := lo; i < min(lo+per, n); i++ {
				seq++
				id := fmt.Sprintf("M%07d", i)
				at := day.add(-400+i*400/n).at(10, 0)
				e := &entry.Entry{Store: "S1", Till: "T1", Seq: seq, Kind: entry.KindEnrol, MemberID: id, At: at,
					Enrol: &entry.Enrol{Member: entry.Member{ID: id, Name: "王芳", Mobile: fmt.Sprintf("139%08d", i),
						Birthday: dayOf(2000, 1, 1).add(i % 366).t.Format("01-02"), Tier: "silver"}}}
				b.Items = append(b.Items, hq.Item{Seq: seq, Entry: e})
				ids = append(ids, id)
			}
			b.Last = seq
			_, err := st.Ingest(ctx, b)
			require.NoError(t, err)
			// Consent in bulk: SetConsent is one transaction a member.
			_, err = st.Pool().Exec(ctx, `INSERT INTO member_consent (member, status, at, source)
				SELECT unnest($1::text[]), $2, $3, 'store:S1'`, ids, hq.ConsentGranted, day.t)
			require.NoError(t, err)
		}
		_, err = st.Pool().Exec(ctx, "ANALYZE")
		require.NoError(t, err)
		t0 := time.Now()
		r, err := st.RunMessageDay(ctx, set, messages.DateOf(day.t, shanghai), day.at(0, 5))
		job := time.Since(t0)
		require.NoError(t, err)
		require.True(t, r.Ran)
		t0 = time.Now()
		var all int
		require.NoError(t, st.Members(ctx, func(hq.Member) error { all++; return nil }))
		scan := time.Since(t0)
		var size int64
		require.NoError(t, st.Pool().QueryRow(ctx, `SELECT pg_total_relation_size('message_members') + pg_total_relation_size('message_lots')`).Scan(&size))
		t.Logf("%7d members: day job %8s for %d birthday + %d recall reminders (%.0f µs each); reading every member takes %8s; index tables %d bytes/member",
			n, job.Round(time.Millisecond), r.Birthday, r.Recall, float64(job.Microseconds())/float64(max(1, r.Birthday+r.Recall)), scan.Round(time.Millisecond), size/int64(n))
		require.NoError(t, st.Close())
		require.NoError(t, drop())
	}
}

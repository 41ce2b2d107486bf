package multitest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq"
	"posagent/sync/hq/store/pg"
)

// TestChangeReachesTillAtOtherProcess: two hq serve processes on one
// database. A till uploads a member's enrolment and points through A; a
// till of another store, up to date and pulling from B (which answers it
// from its feed head), has the member in its first pull that starts
// hq.DefaultFeedHeadEvery after A acked.
func TestChangeReachesTillAtOtherProcess(t *testing.T) {
	forTargets(t, func(t *testing.T, tg target) {
		a, b := startHQ(t, tg.hqURL, true), startHQ(t, tg.hqURL, true)
		writer := newFleet(t, tg.direct, a.URL, fleetPlan{stores: 1, tills: 1, batch: 50})[0]

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := pg.Open(ctx, tg.direct, pg.Options{MaxConns: 2})
		require.NoError(t, err)
		tok, err := hq.NewServer(st, hq.Options{}).IssueCredential(ctx, hq.RoleStore, "R1", "", "Asia/Shanghai")
		st.Close()
		require.NoError(t, err)
		inbox := memstore.New("R1")
		reader, err := client.New(client.Config{URL: b.URL, Token: tok, Store: "R1"}, inbox, inbox, nil)
		require.NoError(t, err)
		require.NoError(t, reader.SyncNow(ctx)) // snapshot and first page: up to date
		for range 3 {
			require.NoError(t, reader.SyncNow(ctx)) // nothing new
		}
		_, ok := inbox.Member("MX")
		require.False(t, ok)

		till, t0 := writer.tills[0], time.Now().UTC()
		for _, e := range []entry.Entry{till.Enrol("MX", t0), till.Points("MX", t0, 42, "welcome")} {
			_, err := writer.out.Append(till.Till, e)
			require.NoError(t, err)
		}
		require.NoError(t, writer.cl.SyncNow(ctx)) // acked by A: committed
		time.Sleep(hq.DefaultFeedHeadEvery)
		require.NoError(t, reader.SyncNow(ctx))
		m, ok := inbox.Member("MX")
		require.True(t, ok, "the member uploaded through A is in B's pull %v later", hq.DefaultFeedHeadEvery)
		require.EqualValues(t, 42, m.Points)
	})
}

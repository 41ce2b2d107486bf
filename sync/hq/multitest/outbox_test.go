package multitest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/gateway/gatewaytest"
	"posagent/sync/hq/hqrun"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/pg"
)

// TestOutboxConformanceThroughPgBouncer: claims and leases hold no
// session state, so they behave the same through a transaction pooler.
func TestOutboxConformanceThroughPgBouncer(t *testing.T) {
	hqtest.PostgresURL(t)
	pgbouncerPath(t)
	hqtest.RunOutbox(t, openBounced)
}

// TestOutboxSurvivesSIGKILL: `hq serve --pg` (through PgBouncer) is killed
// while it posts messages to a slow gateway and another process is
// started in its place. Every message arrives, exactly once by id; the
// only repeats are messages whose post was under way at the kill (the
// gateway took them, HQ never heard), sent again with the same id once
// the dead process's lease ran out.
func TestOutboxSurvivesSIGKILL(t *testing.T) {
	via, direct := bouncedSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := pg.Open(ctx, direct, pg.Options{MaxConns: 4})
	require.NoError(t, err)
	defer st.Close()

	const n = 150
	var ms []messages.Message
	at := time.Now().Add(-time.Hour).UTC()
	for i := range 30 {
		require.NoError(t, st.SetConsent(ctx, fmt.Sprintf("M%02d", i), true, at, "test"))
	}
	for i := range n {
		ms = append(ms, hqtest.Msg(fmt.Sprintf("kill/%03d", i), fmt.Sprintf("M%02d", i%30), at.Add(time.Duration(i)*time.Millisecond)))
	}
	require.NoError(t, st.Enqueue(ctx, ms))

	secret := "multitest-gateway-secret-0123"
	gw := gatewaytest.New([]byte(secret), nil, func(string, int) gatewaytest.Action {
		return gatewaytest.Action{Delay: 25 * time.Millisecond}
	})
	defer gw.Close()
	args := []string{"--gateway-url", gw.URL, "--quiet-hours", "off", "--gateway-timeout", "1s", "--gateway-rate", "1000"}
	a := startHQArgs(t, via, []string{"HQ_GATEWAY_SECRET=" + secret}, args)
	hqtest.Eventually(t, "a third of the messages", func() bool { return gw.Stats().Taken >= n/3 })
	a.kill()
	killed := time.Now()
	before := gw.Stats().Taken
	require.Less(t, before, n, "the process was killed before it was done")

	b := startHQArgs(t, via, []string{"HQ_GATEWAY_SECRET=" + secret}, args)
	deadline := time.Now().Add(2 * time.Minute)
	for gw.Stats().Taken < n {
		require.True(t, time.Now().Before(deadline), "only %d of %d messages arrived after the restart", gw.Stats().Taken, n)
		time.Sleep(50 * time.Millisecond)
	}
	// Let the new process settle what it holds.
	hqtest.Eventually(t, "every message recorded sent", func() bool {
		sent, err := st.Messages(ctx, hq.OutboxFilter{Status: hq.MsgSent, Limit: 1000})
		return err == nil && len(sent) == n
	})
	b.Stop()

	stats := gw.Stats()
	require.Equal(t, n, stats.Taken)
	require.Empty(t, stats.Overlaps)
	taken := map[string]gatewaytest.Received{}
	for _, r := range gw.Taken() {
		taken[r.ID] = r
	}
	for _, m := range ms {
		require.Contains(t, taken, m.ID)
	}
	for id := range stats.Duplicates {
		require.True(t, taken[id].At.Before(killed), "%s repeated but first taken after the kill", id)
	}
	require.LessOrEqual(t, len(stats.Duplicates), 10, "repeats are at most the batch the killed process held")
	t.Logf("%d messages: %d taken before the kill, %d sent again after it with the same id (dropped by the gateway)", n, before, len(stats.Duplicates))
}

// startHQArgs is startHQ with extra environment and serve flags.
func startHQArgs(t *testing.T, pgURL string, env, args []string) *hqProc {
	t.Helper()
	self, selfEnv := hqrun.Self()
	hp, err := hqrun.StartHQ(hqrun.HQ{Command: self, PG: pgURL, Env: append(selfEnv, env...),
		AdminToken: adminToken, Args: args})
	require.NoError(t, err)
	p := &hqProc{Proc: hp, cmd: hp.Cmd}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("hq process %d log:\n%s", p.cmd.Process.Pid, p.Log.String())
		}
	})
	require.NoError(t, p.wait(), "hq serve")
	return p
}

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqrun"
	"posagent/sync/hq/hqtest"
)

// TestMain lets this test binary run as the hq command (hqrun.Self).
func TestMain(m *testing.M) {
	hqrun.RunSelf()
	os.Exit(m.Run())
}

// TestChainDay runs the load program's chain day in a tiny configuration
// (20 stores × 2 tills, 2 processes, a few seconds) so it keeps working:
// every entry stored once, the totals equal the tills', each process took
// uploads, and every figure is printed.
func TestChainDay(t *testing.T) {
	u := hqtest.PostgresURL(t)
	var out bytes.Buffer
	self, env := hqrun.Self()
	res, err := runChain(context.Background(), chainConfig{
		PG: u, Procs: 2, Stores: 20, Tills: 2, PerTill: 30, Members: 200,
		Duration: 3 * time.Second, Poll: 200 * time.Millisecond, PullEvery: time.Second, Conns: 16, Timeout: 3 * time.Minute,
		Compare: true, HQ: self, HQEnv: env, Seed: 1, Out: &out,
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	require.True(t, res.TotalsOK)
	require.EqualValues(t, 20*2*30, res.Written)
	require.Equal(t, res.Written, res.Stored)
	require.Len(t, res.PerProc, 2)
	var sum int64
	for _, n := range res.PerProc {
		require.Positive(t, n, "each process stored some")
		sum += n
	}
	require.Equal(t, res.Written, sum, "the processes' credited entries add up")
	for _, want := range []string{"entries/s overall", "peak RSS", "upload round trip p50", "CPU over the run", "CPU per 1,000 entries", "MB per million entries",
		"pulls over the day", "pulls after the day", "totals check: HQ's", "raw COPY", "HQ vs raw COPY"} {
		require.True(t, strings.Contains(out.String(), want), "output has %q", want)
	}
}

// TestChainDayIdentityFeed runs a tiny day twice, with HQ's member feed
// carrying every change and then only identity changes while the stores
// look each member up: the second pulls far fewer member states, the
// look-ups are answered, and the totals are right both times.
func TestChainDayIdentityFeed(t *testing.T) {
	u := hqtest.PostgresURL(t)
	self, env := hqrun.Self()
	var pulled [2]int64
	for i, feed := range []string{"all", "identity"} {
		var out bytes.Buffer
		res, err := runChain(context.Background(), chainConfig{
			PG: u, Procs: 1, Stores: 10, Tills: 2, PerTill: 30, Members: 100,
			Duration: 3 * time.Second, Poll: 200 * time.Millisecond, PullEvery: 500 * time.Millisecond, Conns: 8, Timeout: 3 * time.Minute,
			MemberFeed: feed, Lookups: feed == "identity", HQ: self, HQEnv: env, Seed: 1, Out: &out,
		})
		t.Log("\n" + out.String())
		require.NoError(t, err)
		require.True(t, res.TotalsOK)
		require.Contains(t, out.String(), "--member-feed "+feed)
		pulled[i] = res.Pulled
		if feed == "identity" {
			require.Contains(t, out.String(), "member look-ups:")
			require.Positive(t, res.LookedUp)
		}
	}
	require.Positive(t, pulled[1], "enrolments still go out")
	require.Less(t, pulled[1]*2, pulled[0], "the identity feed sends far fewer member states")
}

// TestPulls runs the load program's pulls in a tiny configuration (20
// stores pulling every 200 ms from 2 processes for a second) so it keeps
// working: the stores pull at about their rate and the CPU per pull is
// measured and printed.
func TestPulls(t *testing.T) {
	u := hqtest.PostgresURL(t)
	var out bytes.Buffer
	self, env := hqrun.Self()
	res, err := runPulls(context.Background(), chainConfig{
		PG: u, Procs: 2, Stores: 20, Duration: time.Second, Poll: 50 * time.Millisecond, PullEvery: 200 * time.Millisecond,
		Timeout: 2 * time.Minute, HQ: self, HQEnv: env, Out: &out,
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	// 100 pulls a second are due; the box may be slow, never much faster.
	require.Greater(t, res.PerSecond, 20.0)
	require.Less(t, res.PerSecond, 130.0)
	require.Positive(t, res.HQPerPull, "the HQ processes' CPU is measured")
	for _, want := range []string{"pulls/s", "CPU per pull: HQ", "PostgreSQL (HQ's backends)", "pull round trip p50"} {
		require.Contains(t, out.String(), want)
	}
}

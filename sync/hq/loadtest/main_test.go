package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqrun"
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
	u := os.Getenv("POSAGENT_TEST_PG")
	if u == "" {
		t.Skip("PostgreSQL tests skipped: set POSAGENT_TEST_PG (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := pgx.Connect(ctx, u)
	cancel()
	if err != nil {
		t.Skipf("PostgreSQL tests skipped: POSAGENT_TEST_PG=%q is not reachable: %v", u, err)
	}
	c.Close(context.Background())

	var out bytes.Buffer
	self, env := hqrun.Self()
	res, err := runChain(context.Background(), chainConfig{
		PG: u, Procs: 2, Stores: 20, Tills: 2, PerTill: 30, Members: 200,
		Duration: 3 * time.Second, Poll: 200 * time.Millisecond, Conns: 16, Timeout: 3 * time.Minute,
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
	for _, want := range []string{"entries/s overall", "peak RSS", "upload round trip p50", "CPU over the run", "CPU per 1,000 entries", "MB per million entries", "totals check: HQ's", "raw COPY", "HQ vs raw COPY"} {
		require.True(t, strings.Contains(out.String(), want), "output has %q", want)
	}
}

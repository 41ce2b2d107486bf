package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLedgerTimeWindow(t *testing.T) {
	c, err := Parse([]byte("ledger:\n  clock_skew: 2m\n  max_backdate: 72h\n"))
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, c.Ledger.ClockSkew)
	require.Equal(t, 72*time.Hour, c.Ledger.MaxBackdate)

	c, err = Parse([]byte("store: S1\n"))
	require.NoError(t, err)
	require.Zero(t, c.Ledger.ClockSkew, "0: the ledger's default")

	_, err = Parse([]byte("ledger:\n  clock_skew: -1m\n  max_backdate: -1h\n"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "ledger.clock_skew (line 2): must not be negative")
	require.Contains(t, err.Error(), "ledger.max_backdate (line 3): must not be negative")
}

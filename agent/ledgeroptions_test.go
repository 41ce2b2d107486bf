package agent_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent"
	"posagent/agent/config"
)

func TestLedgerOptionsCarryTheTimeWindow(t *testing.T) {
	cfg := config.Default()
	cfg.Ledger.ClockSkew, cfg.Ledger.MaxBackdate = time.Minute, 48*time.Hour
	o, err := agent.LedgerOptions(cfg)
	require.NoError(t, err)
	require.Equal(t, time.Minute, o.ClockSkew)
	require.Equal(t, 48*time.Hour, o.MaxBackdate)
}

package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCashiersSection(t *testing.T) {
	c, err := Parse([]byte("store: s1\n"))
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute, c.Cashiers.IdleTimeout)
	require.Equal(t, 5, c.Cashiers.MaxPINTries)
	require.False(t, c.Cashiers.AllowPOSWithoutCashier, "POS writes name a cashier unless the config says otherwise")
	s := c.Cashiers.Supervisor
	require.EqualValues(t, 100000, s.TopUpLimit())
	require.True(t, s.NeedsForVoids())
	require.True(t, s.NeedsForRefundsWithoutReceipt())
	require.False(t, s.ManualCardEntry)

	c, err = Parse([]byte(`store: s1
cashiers:
  idle_timeout: 5m
  max_pin_tries: 3
  lockout: 1h
  allow_pos_without_cashier: true
  supervisor: {topup_over: -1, voids: false, refunds_without_receipt: false, manual_card_entry: true}
`))
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, c.Cashiers.IdleTimeout)
	require.Equal(t, time.Hour, c.Cashiers.Lockout)
	require.True(t, c.Cashiers.AllowPOSWithoutCashier)
	s = c.Cashiers.Supervisor
	require.Zero(t, s.TopUpLimit())
	require.False(t, s.NeedsForVoids())
	require.False(t, s.NeedsForRefundsWithoutReceipt())
	require.True(t, s.ManualCardEntry)

	_, err = Parse([]byte("store: s1\ncashiers:\n  max_pin_trys: 3\n"))
	require.ErrorContains(t, err, "max_pin_trys")
	_, err = Parse([]byte("store: s1\ncashiers:\n  supervisor: {topup_over: -5}\n"))
	require.ErrorContains(t, err, "cashiers.supervisor.topup_over")
}

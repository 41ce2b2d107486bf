package ledgercli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger"
	"posagent/ledger/entry"
)

func run(t *testing.T, open Opener, args ...string) (string, string, error) {
	t.Helper()
	c := NewCommand(open)
	var out, errb bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&errb)
	c.SetArgs(args)
	err := c.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func setup(t *testing.T) (string, Opener) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	o := ledger.Options{Store: "S1", Till: "T1", Now: func() time.Time { return time.Date(2025, 6, 10, 10, 0, 0, 0, time.UTC) }}
	l, err := ledger.Open(path, o)
	require.NoError(t, err)
	_, err = l.Enrol(context.Background(), ledger.EnrolRequest{Key: "e1", Member: entry.Member{ID: "M1", Name: "Li"}})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	return path, func() (string, ledger.Options, error) { return path, o, nil }
}

func TestSaleVerifyExportCompact(t *testing.T) {
	path, open := setup(t)
	out, _, err := run(t, open, "sale", "--member", "M1", "--receipt", "R1", "--line", "A100:2:12.50", "--line", "TOB:1:25:nd:ne")
	require.NoError(t, err)
	require.Contains(t, out, "due 48.75") // 2 × 12.50 at 95 % = 23.75, + 25
	require.Contains(t, out, "points earned 23")
	again, _, err := run(t, open, "sale", "--member", "M1", "--receipt", "R1", "--line", "A100:2:12.50", "--line", "TOB:1:25:nd:ne")
	require.NoError(t, err)
	require.Contains(t, again, "S1/T1/3", "the same receipt returns the first sale")
	_, _, err = run(t, open, "sale", "--member", "M1", "--receipt", "R1", "--line", "A100:1:12.50")
	require.ErrorIs(t, err, ledger.ErrKeyConflict)
	q, _, err := run(t, open, "sale", "--member", "M1", "--line", "A100:1:100", "--quote")
	require.NoError(t, err)
	require.Contains(t, q, "due 95.00")

	out, _, err = run(t, open, "verify")
	require.NoError(t, err)
	require.Contains(t, out, "OK")

	exp := filepath.Join(t.TempDir(), "e.jsonl")
	_, _, err = run(t, open, "export", "--out", exp)
	require.NoError(t, err)
	b, err := os.ReadFile(exp)
	require.NoError(t, err)
	require.Equal(t, 3, strings.Count(string(b), "\n"))

	dst := filepath.Join(t.TempDir(), "c.db")
	out, _, err = run(t, open, "compact", "--out", dst)
	require.NoError(t, err)
	require.Contains(t, out, "compacted")
	_, err = os.Stat(dst)
	require.NoError(t, err)

	// Locked by a running agent: the sale error points at posagent sale.
	l, err := ledger.Open(path, ledger.Options{Store: "S1"})
	require.NoError(t, err)
	defer l.Close()
	_, _, err = run(t, open, "sale", "--member", "M1", "--receipt", "R2", "--line", "A:1:1")
	require.ErrorIs(t, err, ledger.ErrLocked)
	require.Contains(t, err.Error(), "posagent sale")
}

func TestParseLine(t *testing.T) {
	l, err := ParseLine(1, "A:3:0.5:nd")
	require.NoError(t, err)
	require.Equal(t, int64(50), l.UnitPrice)
	require.Equal(t, int64(3), l.Qty)
	require.False(t, l.Discountable)
	require.True(t, l.EarnsPoints)
	for _, bad := range []string{"A:1", "A:0:1", ":1:1", "A:1:1.234", "A:1:-1", "A:1:1:xx", "A:x:1", "A:1:1."} {
		_, err := ParseLine(1, bad)
		require.Error(t, err, bad)
	}
}

func TestVerifyFailsOnBreak(t *testing.T) {
	path, open := setup(t)
	// Truncating the file breaks it; verify (via open) must report, not panic.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for i := 0; i < 8192 && i < len(raw); i++ {
		raw[i] = 0xff
	}
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	_, _, err = run(t, open, "verify")
	require.ErrorIs(t, err, ledger.ErrCorrupt)
}

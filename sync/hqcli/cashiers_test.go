package hqcli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/pin"
	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hqcli"
)

func runIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := hqcli.NewCommand()
	var out, errb strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCashierCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	_, _, err := run(t, "store", "add", "S1", "--db", db)
	require.NoError(t, err)

	out, err := runIn(t, "482913\n", "cashier", "add", "--store", "S1", "--id", "c7", "--name", "Li Na", "--role", "supervisor", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `S1\s+c7\s+Li Na\s+supervisor\s+active`, out)
	_, err = runIn(t, "482913\n", "cashier", "add", "--store", "S1", "--id", "c7", "--name", "Li Na", "--db", db)
	require.ErrorIs(t, err, hq.ErrConflict)
	_, err = runIn(t, "12\n", "cashier", "add", "--store", "S1", "--id", "c8", "--name", "X", "--db", db)
	require.ErrorContains(t, err, "4 to 12 digits")
	_, err = runIn(t, "1234\n", "cashier", "add", "--store", "S404", "--id", "c8", "--name", "X", "--db", db)
	require.ErrorIs(t, err, hq.ErrNotFound)

	_, err = runIn(t, "", "cashier", "disable", "--store", "S1", "c7", "--db", db)
	require.NoError(t, err)
	_, err = runIn(t, "777777\n", "cashier", "reset-pin", "--store", "S1", "c7", "--db", db)
	require.NoError(t, err)
	out, err = runIn(t, "", "cashier", "list", "--store", "S1", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `S1\s+c7\s+Li Na\s+supervisor\s+disabled`, out)

	// Only the hash is kept, and it checks the new PIN.
	st, err := bolt.Open(db, bolt.Options{})
	require.NoError(t, err)
	defer st.Close()
	cs, err := st.StoreCashiers(context.Background(), "S1")
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.NotContains(t, cs[0].PINHash, "777777")
	require.NoError(t, pin.Check(cs[0].PINHash, "777777"))
}

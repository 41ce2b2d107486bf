package hqcli_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStoreAddRefusesBadIDs: a store or admin id follows the till's id
// rule (letters, digits, '.', '_', '-'), so no credential can carry a NUL,
// a bidirectional override or a space into keys and reports.
func TestStoreAddRefusesBadIDs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	for _, id := range []string{"S\x001", "S\u202e1", "S 1", ".S1", "S1/T1"} {
		out, _, err := run(t, "store", "add", id, "--db", db)
		require.ErrorContains(t, err, "letters, digits", "%q", id)
		require.Empty(t, out, "no token for %q", id)
		_, _, err = run(t, "store", "add", id, "--admin", "--db", db)
		require.Error(t, err, "%q", id)
	}
	out, _, err := run(t, "store", "list", "--db", db)
	require.NoError(t, err)
	require.NotContains(t, out, "S1")
}

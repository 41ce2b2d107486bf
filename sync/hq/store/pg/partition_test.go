package pg_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// latestMigration is the number of the newest migration file, the schema
// version Open leaves.
func latestMigration(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("migrations")
	require.NoError(t, err)
	v := 0
	for _, d := range des {
		n, err := strconv.Atoi(strings.SplitN(d.Name(), "_", 2)[0])
		require.NoError(t, err, d.Name())
		v = max(v, n)
	}
	return v
}

package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

func TestSnapshot(t *testing.T) {
	hqtest.Snapshot(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	})
}

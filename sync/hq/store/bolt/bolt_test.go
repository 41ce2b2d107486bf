package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

func TestConformance(t *testing.T) {
	hqtest.Run(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		return st
	})
}

func TestLockedFileSaysWhatToDo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(p, bolt.Options{})
	require.NoError(t, err)
	defer st.Close()
	_, err = bolt.Open(p, bolt.Options{Timeout: 50e6})
	require.ErrorContains(t, err, "locked by another process")
}

package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
)

// EnqueueTx writes in the caller's transaction: rolled back, nothing is
// stored; committed, the message is there once however often written.
func TestEnqueueTxFollowsTheTransaction(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "hq.db"), Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	require.NoError(t, st.SetConsent(ctx, "M1", true, at, "test"))
	m := hqtest.Msg("tx/1", "M1", at)

	boom := errors.New("the causing change failed")
	err = st.db.Update(func(tx *bbolt.Tx) error {
		require.NoError(t, EnqueueTx(tx, []messages.Message{m}))
		return boom
	})
	require.ErrorIs(t, err, boom)
	ms, err := st.Messages(ctx, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Empty(t, ms, "rolled back with its cause")

	for range 2 {
		require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error { return EnqueueTx(tx, []messages.Message{m}) }))
	}
	ms, err = st.Messages(ctx, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, hq.MsgPending, ms[0].Status)
}

package hqcli_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

// TestVerify: hq verify agrees on a store as ingest left it, names a row
// that was changed behind its back, and --rebuild mends it.
func TestVerify(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	enrol := a.Enrol("M1", hqtest.T0)
	s := a.Sale("M1", hqtest.T0, 5000, 50, 0, 0, "")
	_, err = st.Ingest(context.Background(), hqtest.Batch(enrol, s, a.Refund(s, hqtest.T0, 1000, 10, 0, false)))
	require.NoError(t, err)
	require.NoError(t, st.Close())

	out, _, err := run(t, "verify", "--db", db)
	require.NoError(t, err)
	require.Equal(t, "KPI aggregates agree exactly with the stored entries\n", out)

	// Add one to a counter of every month row.
	raw, err := bbolt.Open(db, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("agg_months"))
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			n := append([]byte(nil), v...)
			binary.BigEndian.PutUint64(n, binary.BigEndian.Uint64(n)+1)
			if err := b.Put(append([]byte(nil), k...), n); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, raw.Close())
	_, errs, err := run(t, "verify", "--db", db)
	require.ErrorContains(t, err, "differ from the entries")
	require.Contains(t, errs, "month row 2026-03-01 s/S1/")

	out, _, err = run(t, "verify", "--rebuild", "--db", db)
	require.NoError(t, err)
	require.Contains(t, out, "rebuilt the aggregates")
	out, _, err = run(t, "verify", "--db", db)
	require.NoError(t, err)
	require.Contains(t, out, "agree exactly")
}

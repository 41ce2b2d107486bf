package bolt_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

// TestAggregatesBuiltOnUpgrade: a schema-2 file (entries, no aggregates)
// gets its aggregates built from the entries when opened.
func TestAggregatesBuiltOnUpgrade(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	enrol := a.Enrol("M1", hqtest.T0)
	s := a.Sale("M1", hqtest.T0, 5000, 50, 0, 0, "")
	_, err = st.Ingest(context.Background(), hqtest.Batch(enrol, s, a.Sale("M1", hqtest.T0, 700, 7, 0, 0, ""), a.Void(s, hqtest.T0)))
	require.NoError(t, err)
	require.NoError(t, st.Close())

	asOlderHQ(t, db, 2, func(tx *bbolt.Tx) error {
		for _, b := range []string{"agg_days", "agg_months", "agg_sales", "agg_members"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})

	st, err = bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	hqtest.VerifyAggregates(t, st)
	d := hq.DayOf(hqtest.T0).Month()
	rs, err := st.AggRows(context.Background(), true, d, d, hq.ScopeStore)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.EqualValues(t, 1, rs[0].N[hq.AggMemberSales], "the voided sale is not counted")
	require.EqualValues(t, 700, rs[0].N[hq.AggMemberAmount])
	require.EqualValues(t, 1, rs[0].N[hq.AggNewMembers])
}

// TestSchema4WalkInReversalsRebuilt: a schema-4 file dropped the reversal
// of a walk-in sale that came with or before it; opened now, its
// aggregates are rebuilt and agree with a recomputation.
func TestSchema4WalkInReversalsRebuilt(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	w := a.Sale("", hqtest.T0, 999, 0, 0, 0, "")
	_, err = st.Ingest(context.Background(), hqtest.Batch(w, a.Void(w, hqtest.T0)))
	require.NoError(t, err)
	hqtest.VerifyAggregates(t, st)
	require.NoError(t, st.Close())

	asOlderHQ(t, db, 4, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("agg_sales")).Delete([]byte(w.ID()))
	})

	st, err = bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	hqtest.VerifyAggregates(t, st)
}

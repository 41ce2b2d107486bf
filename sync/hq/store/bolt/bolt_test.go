package bolt_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/internal/boltjs"
)

func TestConformance(t *testing.T) {
	hqtest.Run(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		return st
	})
}

// With a gather delay concurrent uploads share commits for sure; the
// suite must pass all the same.
func TestConformanceGrouped(t *testing.T) {
	hqtest.Run(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true, BatchDelay: 5 * time.Millisecond})
		require.NoError(t, err)
		return st
	})
}

func TestIdentityFeed(t *testing.T) {
	hqtest.RunIdentityFeed(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true, IdentityFeed: true})
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

// An upload that fails in storage (a till name too long for a key) fails
// alone: the uploads that shared its commit are stored and acknowledged.
func TestBadUploadFailsAlone(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true, BatchDelay: 20 * time.Millisecond})
	require.NoError(t, err)
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const good = 12
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make([]error, good+1)
	for i := 0; i <= good; i++ {
		till := fmt.Sprintf("T%d", i)
		if i == good {
			till = strings.Repeat("x", 40000) // longer than bbolt's largest key
		}
		tl := &hqtest.Till{Store: "S1", Till: till}
		b := hqtest.Batch(tl.Sale("M1", at, 100, 1, 0, 0, ""), tl.Sale("M2", at, 100, 1, 0, 0, ""))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Ingest(ctx, b)
		}()
	}
	wg.Wait()
	for i := 0; i < good; i++ {
		require.NoError(t, errs[i], "upload %d", i)
	}
	require.Error(t, errs[good])
	for _, id := range []string{"M1", "M2"} {
		m, err := st.Member(ctx, id)
		require.NoError(t, err)
		require.EqualValues(t, good, m.Points, "member %s: one point per good upload, none from the bad one", id)
	}
	n := 0
	require.NoError(t, st.Scan(ctx, func(hq.Stored) error { n++; return nil }))
	require.Equal(t, 2*good, n)
}

// asOlderHQ makes the store file at path (closed, or not there yet) what
// an older hq wrote: edit changes its buckets and the file gets schema.
func asOlderHQ(t *testing.T, path string, schema uint64, edit func(tx *bbolt.Tx) error) {
	t.Helper()
	raw, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bbolt.Tx) error {
		if err := edit(tx); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), boltjs.U64(schema))
	}))
	require.NoError(t, raw.Close())
}

// A file written with schema 1 (members as one JSON record) is migrated on
// open: members, balances and the changes feed carry on.
func TestMigratesSchema1(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hq.db")
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	type v1 struct {
		hq.Member
		Version uint64 `json:"version"`
	}
	old := []v1{
		{Member: hq.Member{ID: "M1", Points: 40, StoredValue: 700, LastSale: at,
			Data: &entry.Member{ID: "M1", Name: "Li", Tier: "gold"}, TierAt: at,
			Coupons: []hq.CouponState{{MemberCoupon: entry.MemberCoupon{ID: "C1", MemberID: "M1", Value: 20}, Known: true}}}, Version: 1},
		{Member: hq.Member{ID: "M2", Points: -5, Flagged: true}, Version: 2},
	}
	asOlderHQ(t, p, 1, func(tx *bbolt.Tx) error {
		for _, name := range []string{"credentials", "tokens", "tills", "entries", "dead", "members", "member_log", "programs", "meta"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		for _, r := range old {
			raw, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("members")).Put([]byte(r.ID), raw); err != nil {
				return err
			}
			if err := tx.Bucket([]byte("member_log")).Put(boltjs.U64(r.Version), []byte(r.ID)); err != nil {
				return err
			}
		}
		if _, err := tx.Bucket([]byte("member_log")).NextSequence(); err != nil {
			return err
		}
		return tx.Bucket([]byte("member_log")).SetSequence(2)
	})

	st, err := bolt.Open(p, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	for _, r := range old {
		m, err := st.Member(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, r.Member, m)
	}
	ch, err := st.Changes(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, ch.Members, 2)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	_, err = st.Ingest(ctx, hqtest.Batch(tl.Sale("M1", at.Add(time.Hour), 1000, 10, 0, 0, "")))
	require.NoError(t, err)
	m, err := st.Member(ctx, "M1")
	require.NoError(t, err)
	require.EqualValues(t, 50, m.Points)
	require.Equal(t, "gold", m.Data.Tier)
	require.Equal(t, at.Add(time.Hour), m.LastSale)
	ch, err = st.Changes(ctx, ch.Cursor, 10)
	require.NoError(t, err)
	require.Len(t, ch.Members, 1)
	require.Equal(t, "M1", ch.Members[0].Member.ID)
}

// Close answers uploads still waiting and later ones with ErrClosed.
func TestIngestAfterClose(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	_, err = st.Ingest(context.Background(), hqtest.Batch(tl.Points("M1", time.Now(), 1, "x")))
	require.ErrorIs(t, err, bolt.ErrClosed)
}

func TestOutboxConformance(t *testing.T) {
	hqtest.RunOutbox(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		return st
	})
}

func TestEnrolConformance(t *testing.T) {
	hqtest.RunEnrol(t, func(t *testing.T) hq.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		return st
	})
}

// A file of schema 6 has no KPI lifetime rows: opening it sums them from
// the month rows, and the aggregates then agree with a recomputation.
func TestSchema6GetsLifetimeRows(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(p, bolt.Options{NoSync: true})
	require.NoError(t, err)
	ctx := context.Background()
	tills := []*hqtest.Till{{Store: "S1", Till: "T1"}, {Store: "S2", Till: "T1"}}
	at := time.Date(2025, 5, 3, 10, 0, 0, 0, hqtest.Shanghai)
	for m := 0; m < 14; m++ {
		for i, tl := range tills {
			id := fmt.Sprintf("M%d-%d", m, i)
			es := []entry.Entry{tl.Enrol(id, at.AddDate(0, m, i))}
			if m%2 == 0 {
				es = append(es, tl.Sale(id, at.AddDate(0, m, i+1), 1000, 10, 0, 0, ""))
			}
			_, err := st.Ingest(ctx, hqtest.Batch(es...))
			require.NoError(t, err)
		}
	}
	want, err := st.AggDump(ctx)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	dropped := 0
	asOlderHQ(t, p, 6, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("agg_months"))
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if binary.BigEndian.Uint32(k)^1<<31 == uint32(hq.LifetimeDay) {
				keys = append(keys, append([]byte(nil), k...))
			}
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		dropped = len(keys)
		return nil
	})
	require.Equal(t, 2, dropped, "one lifetime row per store")

	st, err = bolt.Open(p, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	got, err := st.AggDump(ctx)
	require.NoError(t, err)
	require.Empty(t, hq.CompareAggregates(want, got))
	hqtest.VerifyAggregates(t, st)
}

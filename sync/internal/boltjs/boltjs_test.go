package boltjs

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

type rec struct {
	N    int    `json:"n"`
	Name string `json:"name"`
}

func TestRoundTripInKeyOrder(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		if Last(b) != 0 || Last(nil) != 0 || Uint64(nil) != 0 {
			t.Errorf("empty bucket, nil bucket and nil key must read as 0")
		}
		// 256 sorts before 2 as text; as U64 keys it must come after.
		for _, n := range []uint64{256, 2, 70000} {
			if err := Put(b, U64(n), rec{N: int(n), Name: "r"}); err != nil {
				return err
			}
		}
		if got := Last(b); got != 70000 {
			t.Errorf("Last = %d, want 70000", got)
		}
		all, err := All[rec](b)
		if err != nil {
			return err
		}
		if len(all) != 3 || all[0].N != 2 || all[1].N != 256 || all[2].N != 70000 {
			t.Errorf("All = %+v, want 2, 256, 70000 in that order", all)
		}
		var keys []uint64
		if err := Each(b, func(k []byte, r rec) error {
			if Uint64(k) != uint64(r.N) {
				t.Errorf("key %d holds %+v", Uint64(k), r)
			}
			keys = append(keys, Uint64(k))
			return nil
		}); err != nil {
			return err
		}
		if len(keys) != 3 {
			t.Errorf("Each visited %v", keys)
		}
		stop := errors.New("stop")
		if err := Each(b, func([]byte, rec) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("Each must return fn's error, got %v", err)
		}
		if err := b.Put(U64(1), []byte("{not json")); err != nil {
			return err
		}
		if _, err := All[rec](b); err == nil {
			t.Errorf("All must fail on a value that is not JSON")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package bolt

import (
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

// DBStats exposes bbolt's statistics to the benchmark.
func DBStats(s *Store) bbolt.Stats { return s.db.Stats() }

// Groups is how many group commits stored how many uploads.
func Groups(s *Store) (commits, uploads int64) { return s.commits.Load(), s.uploads.Load() }

// BucketPages lists each bucket's leaf pages, keys and bytes in use.
func BucketPages(s *Store) string {
	out := ""
	_ = s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			st := b.Stats()
			out += fmt.Sprintf("%s: %d keys, %d leaf pages (%d overflow), %d KiB in use; ", name, st.KeyN, st.LeafPageN, st.LeafOverflowN, st.LeafInuse>>10)
			return nil
		})
	})
	return out
}

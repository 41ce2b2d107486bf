package bolt

import bbolt "go.etcd.io/bbolt"

// DBStats exposes bbolt's statistics to the benchmark.
func DBStats(s *Store) bbolt.Stats { return s.db.Stats() }

// Groups is how many group commits stored how many uploads.
func Groups(s *Store) (commits, uploads int64) { return s.commits.Load(), s.uploads.Load() }

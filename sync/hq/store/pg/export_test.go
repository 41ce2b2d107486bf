package pg

// SetPruneRows sets how many log rows one prune transaction reads, until
// the returned func restores it.
func SetPruneRows(n int) (restore func()) {
	old := pruneRows
	pruneRows = n
	return func() { pruneRows = old }
}

// FeedPageSQL is the member feed page query, for EXPLAIN in benchmarks.
const FeedPageSQL = feedPageSQL

// WrapSQL is the counters' wrap-around addition, for tests.
var WrapSQL = wrapSQL

// FraudRelatedSQL is FraudRelated's query, for EXPLAIN in tests.
const FraudRelatedSQL = fraudRelatedSQL

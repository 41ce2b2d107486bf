package client

// SetSnapshotApply sets how many states a snapshot applies at once, until
// the returned func restores it.
func SetSnapshotApply(n int) (restore func()) {
	old := snapshotApply
	snapshotApply = n
	return func() { snapshotApply = old }
}

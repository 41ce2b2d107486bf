package pg

// The reminder day job's queries, for EXPLAIN in tests.
const (
	BirthdaySQL = birthdaySQL
	ExpiringSQL = expiringSQL
	RecallSQL   = recallSQL
)

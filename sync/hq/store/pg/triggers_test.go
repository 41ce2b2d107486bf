package pg_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/store/pg"
)

// The day job reads members by the day's key through the indexes of
// migration 0013, not by reading every member.
func TestReminderDayQueriesUseIndexes(t *testing.T) {
	st := open(t)
	plan := func(q string, args ...any) string { return indexPlan(t, st, q, args...) }
	p := plan(pg.BirthdaySQL, []string{"02-28", "02-29"})
	require.Contains(t, p, "message_members_birthday", p)
	p = plan(pg.ExpiringSQL, "2027-12-31")
	require.Contains(t, p, "message_lots_expires", p)
	require.Contains(t, p, "message_lots_pkey", p) // the later days of each member found
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	p = plan(pg.RecallSQL, from, from.AddDate(0, 0, 1))
	require.Contains(t, p, "members_last_sale", p)
	require.Contains(t, p, "message_members_enrolled", p)
	require.NotContains(t, p, "Seq Scan", p)
}

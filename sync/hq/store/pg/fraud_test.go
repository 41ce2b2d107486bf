package pg_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/store/pg"
)

// TestFraudQueriesUseIndexes: the month's enrolments and the lookups by
// mobile and card token can be read by index (sequential scans off, so the
// plan shows what the planner can use on a table of any size), never by
// reading every member.
func TestFraudQueriesUseIndexes(t *testing.T) {
	st := open(t)
	plan := func(q string, args ...any) string { return indexPlan(t, st, q, args...) }
	p := plan(`SELECT member_id FROM fraud_enrolments WHERE month = $1 AND month <> ''`, "2026-02")
	require.Contains(t, p, "fraud_enrolments_month", p)
	p = plan(pg.FraudRelatedSQL, []string{"13800001234"}, []string{"tok"})
	require.Contains(t, p, "fraud_enrolments_mobile", p)
	require.Contains(t, p, "fraud_enrolments_cards", p)
	p = plan(`SELECT sales FROM fraud_cashier_months WHERE month = $1`, "2026-02")
	require.Contains(t, p, "fraud_cashier_months_pkey", p)
}

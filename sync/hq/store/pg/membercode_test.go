package pg_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/store/pg"
)

// TestMemberCodeRepeatsReadByIndex: a month's repeats (the fraud report's
// read) are found through the index on received, and their first claims
// by primary key, never by reading every repeat.
func TestMemberCodeRepeatsReadByIndex(t *testing.T) {
	st := open(t)
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	p := indexPlan(t, st, pg.MemberCodeRepeatsSQL, from, from.AddDate(0, 1, 0))
	require.Contains(t, p, "member_code_repeats_received", p)
	require.Contains(t, p, "member_code_claims_pkey", p)
	require.NotContains(t, p, "Seq Scan", p)
}

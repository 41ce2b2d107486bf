package pg_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/store/pg"
)

// indexPlan is the plan of q with sequential scans off, so it shows what
// the planner can read by index on a table of any size (a small test table
// would be read whole whatever its indexes).
func indexPlan(t *testing.T, st *pg.Store, q string, args ...any) string {
	t.Helper()
	ctx := t.Context()
	var out []string
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	require.NoError(t, err)
	return strings.Join(out, "\n")
}

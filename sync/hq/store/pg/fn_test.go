package pg_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/store/pg"
)

// TestIngestFunctions: Open creates the ingest path's functions in the
// store's schema once (a second Open, as a second HQ process, adds none),
// and each plans with index lookups and without JIT or parallel workers:
// the cost PostgreSQL adds to a discouraged sequential scan once made a
// one-row read JIT-compile for a quarter of a second on every upload.
func TestIngestFunctions(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	type fn struct {
		Name   string
		Config []string
	}
	read := func() []fn {
		rows, err := st.Pool().Query(ctx, `SELECT proname, coalesce(proconfig, '{}') FROM pg_proc
			WHERE pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND proname LIKE 'hq\_%' ORDER BY proname`)
		require.NoError(t, err)
		fs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
		require.NoError(t, err)
		return fs
	}
	fs := read()
	// The ingest path's statements, each a function (several writes share one).
	for _, short := range []string{"begin_upload", "load_facts", "trig_members", "msg_index", "agg_write", "fraud",
		"balances", "structural_read", "structural_write", "ack_till", "ingest_tail"} {
		require.True(t, slices.ContainsFunc(fs, func(f fn) bool { return strings.HasPrefix(f.Name, "hq_"+short+"_") }), "hq_%s_… exists", short)
	}
	for _, f := range fs {
		for _, want := range []string{"jit=off", "max_parallel_workers_per_gather=0", "enable_seqscan=off", "enable_hashjoin=off", "enable_mergejoin=off"} {
			require.True(t, slices.Contains(f.Config, want), "%s has %s (has %v)", f.Name, want, f.Config)
		}
	}
	again, err := pg.Open(ctx, u, pg.Options{MaxConns: 2})
	require.NoError(t, err)
	require.NoError(t, again.Close())
	require.Equal(t, fs, read(), "a second Open changes no function")
}

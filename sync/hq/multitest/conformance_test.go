package multitest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// openBounced opens the PostgreSQL store on a fresh schema through
// PgBouncer in transaction pooling mode.
func openBounced(t *testing.T) hq.Store {
	u, _ := bouncedSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 8})
	require.NoError(t, err)
	return st
}

// TestConformanceThroughPgBouncer: the store behaves the same when every
// transaction may run on a different server connection: no session state,
// no named prepared statements.
func TestConformanceThroughPgBouncer(t *testing.T) {
	hqtest.PostgresURL(t)
	pgbouncerPath(t)
	hqtest.Run(t, openBounced)
}

// TestSearchPathThroughPgBouncer: PgBouncer refuses a search_path sent at
// startup; Open says where to set the schema instead.
func TestSearchPathThroughPgBouncer(t *testing.T) {
	u, _ := bouncedSchema(t)
	u, err := pg.WithSearchPath(u, "elsewhere")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = pg.Open(ctx, u, pg.Options{})
	require.ErrorContains(t, err, "unsupported startup parameter: search_path")
	require.ErrorContains(t, err, "connect_query")
}

// TestQueryExecMode: unnamed statements (cache_describe) unless the URL
// chooses pgx's mode itself, in either URL form.
func TestQueryExecMode(t *testing.T) {
	_, _, direct := freshSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := pgx.ParseConfig(direct)
	require.NoError(t, err)
	dsn := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable search_path=%s", kv.Host, kv.Port, kv.User, kv.Database, kv.RuntimeParams["search_path"])
	for _, c := range []struct {
		url  string
		want pgx.QueryExecMode
	}{
		{direct, pgx.QueryExecModeCacheDescribe},
		{direct + "&default_query_exec_mode=cache_statement", pgx.QueryExecModeCacheStatement},
		{dsn, pgx.QueryExecModeCacheDescribe},
		{dsn + " default_query_exec_mode=cache_statement", pgx.QueryExecModeCacheStatement},
	} {
		st, err := pg.Open(ctx, c.url, pg.Options{MaxConns: 1})
		require.NoError(t, err, c.url)
		require.Equal(t, c.want, st.Pool().Config().ConnConfig.DefaultQueryExecMode, c.url)
		require.NoError(t, st.Close())
	}
}

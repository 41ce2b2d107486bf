package multitest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqrun"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// freshSchema makes a new, empty schema, dropped at test end. It returns
// the server's URL, the schema's name and a URL that uses it directly.
func freshSchema(t testing.TB) (server, schema, direct string) {
	server = hqtest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, drop, err := pg.FreshSchema(ctx, server, "hqmulti_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	cfg, err := pgx.ParseConfig(direct)
	require.NoError(t, err)
	return server, cfg.RuntimeParams["search_path"], direct
}

// pgbouncerPath finds Debian's pgbouncer. Without it the test skips,
// except under CI, which installs it (.ci/run) and so fails rather than
// skip silently.
func pgbouncerPath(t testing.TB) string {
	t.Helper()
	p, err := hqrun.PgBouncerPath()
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("pgbouncer is not installed; CI installs Debian's pgbouncer package (.ci/run)")
	}
	t.Skip("PgBouncer tests skipped: " + err.Error())
	return ""
}

// startBouncer starts PgBouncer (pool_mode=transaction) in front of
// server with search_path set to schema on its side (hqrun.StartBouncer);
// stopped at test end.
func startBouncer(t testing.TB, server, schema string) *hqrun.Bouncer {
	t.Helper()
	b, err := hqrun.StartBouncer(pgbouncerPath(t), server, schema)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

// bouncedSchema is a fresh schema reached through its own PgBouncer; it
// returns the bouncer's URL and the schema's direct URL.
func bouncedSchema(t testing.TB) (viaBouncer, direct string) {
	server, schema, direct := freshSchema(t)
	return startBouncer(t, server, schema).URL, direct
}

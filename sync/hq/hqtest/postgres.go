package hqtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURL is the PostgreSQL server to test against
// (POSAGENT_TEST_PG), or a skip that says what to set. Under CI (CI set),
// a server named but not reachable fails the test: .ci/run starts one.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("POSAGENT_TEST_PG")
	if u == "" {
		t.Skip("PostgreSQL tests skipped: set POSAGENT_TEST_PG (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil && os.Getenv("CI") != "" {
		t.Fatalf("POSAGENT_TEST_PG=%q is not reachable: %v", u, err)
	}
	if err != nil {
		t.Skipf("PostgreSQL tests skipped: POSAGENT_TEST_PG=%q is not reachable: %v", u, err)
	}
	_ = c.Close(ctx)
	return u
}

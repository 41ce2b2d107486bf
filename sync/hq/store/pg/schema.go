package pg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// WithSearchPath returns the connection string with search_path set.
func WithSearchPath(conn, schema string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return conn + " search_path=" + schema, nil
}

// FreshSchema creates an empty schema with a random name after prefix and
// returns a connection string that uses it, and a func that drops it. Tests,
// the load program and benchmarks use it to run side by side on one server.
func FreshSchema(ctx context.Context, conn, prefix string) (string, func() error, error) {
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		return "", nil, err
	}
	defer c.Close(ctx)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	name := prefix + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	u, err := WithSearchPath(conn, name)
	drop := func() error {
		c, err := pgx.Connect(context.Background(), conn)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		return err
	}
	return u, drop, err
}

// setsExecMode tells whether the connection string chooses pgx's
// default_query_exec_mode itself.
func setsExecMode(conn string) bool {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		return err == nil && u.Query().Has("default_query_exec_mode")
	}
	for _, f := range strings.Fields(conn) {
		if strings.HasPrefix(f, "default_query_exec_mode=") {
			return true
		}
	}
	return false
}

// poolerHint explains PgBouncer's refusal of a startup parameter: it takes
// no search_path (or options) from the client, so the schema is chosen on
// its side.
func poolerHint(err error) string {
	if !strings.Contains(err.Error(), "unsupported startup parameter") {
		return ""
	}
	return " (through PgBouncer, leave search_path out of the URL: set it with connect_query in PgBouncer's [databases] entry, or with ALTER ROLE ... SET search_path)"
}

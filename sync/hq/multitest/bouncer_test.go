package multitest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/store/pg"
)

// testURL is the server to test against, or a skip with what to set.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("POSAGENT_TEST_PG")
	if u == "" {
		t.Skip("PostgreSQL tests skipped: set POSAGENT_TEST_PG (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Skipf("PostgreSQL tests skipped: POSAGENT_TEST_PG=%q is not reachable: %v", u, err)
	}
	c.Close(ctx)
	return u
}

// freshSchema makes a new, empty schema, dropped at test end. It returns
// the server's URL, the schema's name and a URL that uses it directly.
func freshSchema(t testing.TB) (server, schema, direct string) {
	server = testURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, drop, err := pg.FreshSchema(ctx, server, "hqmulti_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	cfg, err := pgx.ParseConfig(direct)
	require.NoError(t, err)
	return server, cfg.RuntimeParams["search_path"], direct
}

// pgbouncerPath finds Debian's pgbouncer (in /usr/sbin, which a user's PATH
// may lack). Without it the test skips, except under CI, which installs it
// (.ci/run) and so fails rather than skip silently.
func pgbouncerPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("pgbouncer is not installed; CI installs Debian's pgbouncer package (.ci/run)")
	}
	t.Skip("PgBouncer tests skipped: pgbouncer is not installed (Debian: apt-get install pgbouncer)")
	return ""
}

// bouncer is a PgBouncer process in transaction pooling mode in front of the
// test server.
type bouncer struct {
	URL string // postgres:// URL of database "hq" through the bouncer
	cmd *exec.Cmd
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBouncer starts PgBouncer (pool_mode=transaction) with one database,
// "hq", that is server's database with search_path set to schema on each
// server connection (connect_query): PgBouncer refuses a search_path sent
// by the client at startup, so the schema is chosen on its side. Stopped at
// test end.
func startBouncer(t testing.TB, server, schema string) *bouncer {
	t.Helper()
	bin := pgbouncerPath(t)
	sc, err := pgconn.ParseConfig(server)
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "pgbouncer")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// PgBouncer refuses to run as root; it then runs as nobody (-u), which
	// must be able to read its files.
	require.NoError(t, os.Chmod(dir, 0o755))
	users := filepath.Join(dir, "users.txt")
	require.NoError(t, os.WriteFile(users, []byte(fmt.Sprintf("%q \"\"\n", sc.User)), 0o644))
	db := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", sc.Host, sc.Port, sc.Database, sc.User)
	if sc.Password != "" {
		db += " password=" + sc.Password
	}
	if schema != "" {
		db += fmt.Sprintf(" connect_query='SET search_path TO %s'", pgx.Identifier{schema}.Sanitize())
	}
	var last error
	for try := 0; try < 5; try++ { // a free port may be taken before PgBouncer binds it
		port := freePort(t)
		ini := filepath.Join(dir, "pgbouncer.ini")
		require.NoError(t, os.WriteFile(ini, []byte(`[databases]
hq = `+db+`
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = `+strconv.Itoa(port)+`
unix_socket_dir =
auth_type = trust
auth_file = `+users+`
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
server_reset_query =
`), 0o644))
		args := []string{ini}
		if os.Geteuid() == 0 {
			args = []string{"-u", "nobody", ini}
		}
		b := &bouncer{
			URL: fmt.Sprintf("postgres://%s@127.0.0.1:%d/hq?sslmode=disable", sc.User, port),
			cmd: exec.Command(bin, args...),
			log: &syncBuffer{},
		}
		if sc.Password != "" {
			b.URL = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/hq?sslmode=disable", sc.User, sc.Password, port)
		}
		b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
		dieWithParent(b.cmd)
		require.NoError(t, b.cmd.Start())
		exited := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(exited) }()
		if last = b.ready(exited); last == nil {
			t.Cleanup(func() {
				_ = b.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					_ = b.cmd.Process.Kill()
					<-exited
				}
			})
			return b
		}
		_ = b.cmd.Process.Kill()
		<-exited
		last = fmt.Errorf("%w\npgbouncer log:\n%s", last, b.log.String())
	}
	t.Fatalf("pgbouncer did not start: %v", last)
	return nil
}

// ready waits until a query goes through the bouncer.
func (b *bouncer) ready(exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, b.URL)
		if err == nil {
			var one int
			err = c.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one)
			_ = c.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgbouncer exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bouncedSchema is a fresh schema reached through its own PgBouncer; it
// returns the bouncer's URL and the schema's direct URL.
func bouncedSchema(t testing.TB) (viaBouncer, direct string) {
	server, schema, direct := freshSchema(t)
	return startBouncer(t, server, schema).URL, direct
}

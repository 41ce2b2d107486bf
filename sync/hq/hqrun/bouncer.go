package hqrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPgBouncer: pgbouncer is not installed.
var ErrNoPgBouncer = errors.New("pgbouncer is not installed (Debian: apt-get install pgbouncer)")

// PgBouncerPath finds Debian's pgbouncer (in /usr/sbin, which a user's PATH
// may lack), or returns ErrNoPgBouncer.
func PgBouncerPath() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", ErrNoPgBouncer
}

// Bouncer is a PgBouncer process in transaction pooling mode.
type Bouncer struct {
	URL    string // postgres:// URL of database "hq" through the bouncer
	Cmd    *exec.Cmd
	Log    *SyncBuffer
	exited chan struct{}
	dir    string
}

// StartBouncer starts PgBouncer bin (pool_mode=transaction) with one
// database, "hq", that is server's database with search_path set to schema
// on each server connection (connect_query): PgBouncer refuses a
// search_path sent by the client at startup, so the schema is chosen on its
// side. It returns once a query goes through it; Close stops it.
func StartBouncer(bin, server, schema string) (*Bouncer, error) {
	sc, err := pgconn.ParseConfig(server)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgbouncer")
	if err != nil {
		return nil, err
	}
	// PgBouncer refuses to run as root; it then runs as nobody (-u), which
	// must be able to read its files.
	users := filepath.Join(dir, "users.txt")
	if err := errors.Join(os.Chmod(dir, 0o755), os.WriteFile(users, []byte(fmt.Sprintf("%q \"\"\n", sc.User)), 0o644)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	db := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", sc.Host, sc.Port, sc.Database, sc.User)
	if sc.Password != "" {
		db += " password=" + sc.Password
	}
	if schema != "" {
		db += fmt.Sprintf(" connect_query='SET search_path TO %s'", pgx.Identifier{schema}.Sanitize())
	}
	var last error
	for try := 0; try < 5; try++ { // a free port may be taken before PgBouncer binds it
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		ini := filepath.Join(dir, "pgbouncer.ini")
		if err := os.WriteFile(ini, []byte(`[databases]
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
`), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		args := []string{ini}
		if os.Geteuid() == 0 {
			args = []string{"-u", "nobody", ini}
		}
		b := &Bouncer{
			URL:    fmt.Sprintf("postgres://%s@127.0.0.1:%d/hq?sslmode=disable", sc.User, port),
			Cmd:    exec.Command(bin, args...),
			Log:    &SyncBuffer{},
			exited: make(chan struct{}),
			dir:    dir,
		}
		if sc.Password != "" {
			b.URL = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/hq?sslmode=disable", sc.User, sc.Password, port)
		}
		b.Cmd.Stdout, b.Cmd.Stderr = b.Log, b.Log
		DieWithParent(b.Cmd)
		if err := b.Cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start pgbouncer: %w", err)
		}
		go func() { _ = b.Cmd.Wait(); close(b.exited) }()
		if last = b.ready(); last == nil {
			return b, nil
		}
		_ = b.Cmd.Process.Kill()
		<-b.exited
		last = fmt.Errorf("%w\npgbouncer log:\n%s", last, b.Log.String())
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("pgbouncer did not start: %w", last)
}

// Close stops PgBouncer (SIGTERM, then SIGKILL after 5 s) and removes its
// files.
func (b *Bouncer) Close() {
	_ = b.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.Cmd.Process.Kill()
		<-b.exited
	}
	os.RemoveAll(b.dir)
}

// ready waits until a query goes through the bouncer.
func (b *Bouncer) ready() error {
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
		case <-b.exited:
			return fmt.Errorf("pgbouncer exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

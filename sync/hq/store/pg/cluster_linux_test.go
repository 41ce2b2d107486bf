//go:build linux

package pg_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDir finds the PostgreSQL server programs: POSAGENT_PG_BIN, else
// pg_config --bindir, else the newest /usr/lib/postgresql/*/bin (Debian).
func pgBinDir() (string, error) {
	has := func(d string) bool {
		for _, p := range []string{"initdb", "pg_resetwal", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, p)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("POSAGENT_PG_BIN"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("POSAGENT_PG_BIN=%s has no initdb, pg_resetwal and postgres", d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); has(d) {
			return d, nil
		}
	}
	ds, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(ds, func(i, j int) bool { // newest major version first
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(ds[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(ds[j])))
		return vi > vj
	})
	for _, d := range ds {
		if has(d) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server programs (initdb, pg_resetwal, postgres) found; set POSAGENT_PG_BIN")
}

// startCluster starts a throwaway PostgreSQL cluster in a temporary
// directory whose next transaction id is next (epoch<<32 | xid, as xid8
// shows it), listening only on a unix socket in that directory, and returns
// its URL. The server is stopped and the directory removed at test end; the
// server also dies with the test process. unavailable says why no cluster
// could be made (no server programs, or root without a postgres user); any
// other failure fails the test.
func startCluster(t *testing.T, next uint64) (url string, unavailable error) {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		return "", err
	}
	// initdb refuses to run as root: run the programs as postgres then.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root and there is no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	own := func(p string) {
		if cred != nil {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir, err := os.MkdirTemp("", "posagent-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	own(dir)
	data := filepath.Join(dir, "data")
	cmd := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(bin, name), args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return c
	}
	run := func(name string, args ...string) {
		if out, err := cmd(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	epoch, xid := next>>32, uint32(next)
	run("pg_resetwal", "-e", strconv.FormatUint(epoch, 10), "-x", strconv.FormatUint(uint64(xid), 10), "-D", data)
	// The commit log has no page for the new id yet; the server reads it at
	// start, so give it the (zeroed, "in progress") segment that holds it:
	// 32 pages of 8 KiB, 4 transactions a byte.
	const perSegment = 32 * 8192 * 4
	seg := filepath.Join(data, "pg_xact", fmt.Sprintf("%04X", xid/perSegment))
	if _, err := os.Stat(seg); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(seg, make([]byte, 32*8192), 0o600); err != nil {
			t.Fatal(err)
		}
		own(seg)
	}

	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv := cmd("postgres", "-D", data, "-k", dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "autovacuum=off", "-c", "max_connections=40", "-c", "shared_buffers=16MB")
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr.Pdeathsig = syscall.SIGQUIT // immediate shutdown if the test process dies
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})
	url = fmt.Sprintf("host=%s port=5432 user=postgres dbname=postgres sslmode=disable", dir)
	serverLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "server.log")); return string(b) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			var got uint64
			err = c.QueryRow(ctx, `SELECT pg_current_xact_id()::text::int8`).Scan(&got)
			c.Close(ctx)
			cancel()
			if err != nil {
				t.Fatalf("throwaway PostgreSQL: %v\n%s", err, serverLog())
			}
			if got < next || got > next+16 {
				t.Fatalf("throwaway PostgreSQL started at transaction id %d, not %d", got, next)
			}
			return url, nil
		}
		cancel()
		select {
		case <-exited:
			t.Fatalf("throwaway PostgreSQL exited: %v\n%s", err, serverLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("throwaway PostgreSQL did not come up: %v\n%s", err, serverLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

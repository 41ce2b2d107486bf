package agent_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/sync/hq/hqrun"
)

// TestStartWithChainMembers: `posagent run` on a ledger holding a chain's
// members (POSAGENT_AGENT_START_MEMBERS, default 1,000,000), started on a
// cold page cache: the time until /readyz answers 200, RSS then, and the
// background warming of the member pages (its own log line) with RSS and
// the process's CPU after it. Gated: POSAGENT_AGENT_START_BENCH=1.
func TestStartWithChainMembers(t *testing.T) {
	if os.Getenv("POSAGENT_AGENT_START_BENCH") != "1" {
		t.Skip("set POSAGENT_AGENT_START_BENCH=1 to start the agent on a ledger of a chain's members")
	}
	n := 1_000_000
	if v := os.Getenv("POSAGENT_AGENT_START_MEMBERS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o700))
	path := filepath.Join(data, "ledger.db")
	l, err := ledger.Open(path, ledger.Options{Store: "S1", Till: "T1", TimeZone: "Asia/Shanghai"})
	require.NoError(t, err)
	ld, err := l.LoadMembers()
	require.NoError(t, err)
	page := make([]ledger.MemberState, 0, 20_000)
	for i := range n {
		h := sha256.Sum256([]byte("card-" + strconv.Itoa(i)))
		page = append(page, ledger.MemberState{Member: entry.Member{ID: fmt.Sprintf("S%04d-T1-%d", i%997, i), Name: "张伟",
			Mobile: fmt.Sprintf("139%08d", i), Tier: "silver", CardTokens: []string{hex.EncodeToString(h[:])},
			EnrolledAt: "2025-01-01T00:00:00Z"}, Points: int64(i % 5000)})
		if len(page) == cap(page) || i == n-1 {
			require.NoError(t, ld.Add(page))
			page = page[:0]
		}
	}
	require.NoError(t, ld.Finish())
	require.NoError(t, l.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)

	bin := filepath.Join(dir, "posagent")
	build := exec.Command("go", "build", "-o", bin, "posagent/cmd/posagent")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "posagent.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, "store: S1\ntill: T1\ntimezone: Asia/Shanghai\ndata_dir: %s\napi:\n  listen: %s\n", data, addr), 0o600))

	for run := 0; run < 2; run++ {
		for _, p := range []string{path, path + ".wal"} {
			if f, err := os.Open(p); err == nil {
				_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				f.Close()
			}
		}
		cmd := exec.Command(bin, "run", "--config", cfg)
		out, err := cmd.StderrPipe()
		require.NoError(t, err)
		cmd.Stdout = cmd.Stderr
		warmed := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "member pages read into the cache") {
					warmed <- sc.Text()
				}
			}
		}()
		start := time.Now()
		require.NoError(t, cmd.Start())
		var ready time.Duration
		for time.Since(start) < time.Minute {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready = time.Since(start)
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		require.NotZero(t, ready, "/readyz did not answer 200 within a minute")
		rssReady := statusKB(cmd.Process.Pid, "VmRSS:")
		var line string
		select {
		case line = <-warmed:
		case <-time.After(time.Minute):
			t.Fatal("no warming line within a minute")
		}
		time.Sleep(time.Second)
		t.Logf("%d members (ledger %d MB), run %d: /readyz 200 after %v (target < 1 s), RSS then %d KB; warming: %s; RSS after it %d KB (peak %d KB, target < 100 MB), process CPU so far %v",
			n, st.Size()>>20, run, ready.Round(time.Millisecond), rssReady, line[max(0, strings.Index(line, "pages=")):], statusKB(cmd.Process.Pid, "VmRSS:"),
			statusKB(cmd.Process.Pid, "VmHWM:"), hqrun.ProcCPU(cmd.Process.Pid, false))
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, cmd.Wait())
	}
}

// statusKB reads a kB field of /proc/<pid>/status.
func statusKB(pid int, field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, field); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

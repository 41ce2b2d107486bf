// Package hqrun starts the processes HQ runs among for tests and the load
// program: `hq serve` processes on loopback and a PgBouncer in transaction
// pooling mode, each reporting errors rather than failing a test, so a
// command can use them as well as a test.
package hqrun

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for a process's stdout and stderr at
// once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// HQ says how to start one `hq serve --pg` process.
type HQ struct {
	// Command is the hq command line before "serve": {"/tmp/x/posagent",
	// "hq"} for the posagent binary, or a test binary that runs the hq
	// command itself.
	Command []string
	PG      string   // --pg URL
	Env     []string // added to this process's environment
	// AdminToken is given as HQ_ADMIN_TOKEN; Wait uses it for /healthz.
	AdminToken string
	Args       []string // more flags after serve's own
	// CPUs, when above 0, holds the process to that many CPUs (CapCPU):
	// on one test machine, each process stands for a machine of its own.
	CPUs float64
}

// Proc is one `hq serve` process on a free loopback port.
type Proc struct {
	URL      string // http://127.0.0.1:port, once Wait has returned nil
	Cmd      *exec.Cmd
	Log      *SyncBuffer
	Exited   chan struct{} // closed once the process has ended
	addrFile string
	dir      string
	token    string
}

// StartHQ starts the process; it does not wait for it to serve (Wait).
// Stop or Kill it when done: it dies with this process on Linux.
func StartHQ(h HQ) (*Proc, error) {
	if len(h.Command) == 0 {
		return nil, fmt.Errorf("hqrun: no hq command given")
	}
	dir, err := os.MkdirTemp("", "hqrun")
	if err != nil {
		return nil, err
	}
	p := &Proc{Log: &SyncBuffer{}, Exited: make(chan struct{}), addrFile: filepath.Join(dir, "addr"), dir: dir, token: h.AdminToken}
	args := append(append([]string{}, h.Command[1:]...), "serve", "--pg", h.PG, "--listen", "127.0.0.1:0", "--addr-file", p.addrFile)
	p.Cmd = exec.Command(h.Command[0], append(args, h.Args...)...)
	p.Cmd.Env = append(append(os.Environ(), h.Env...), "HQ_ADMIN_TOKEN="+h.AdminToken)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Log, p.Log
	DieWithParent(p.Cmd)
	if err := p.Cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("hqrun: start %s: %w", h.Command[0], err)
	}
	uncap := func() {}
	if h.CPUs > 0 {
		if uncap, err = CapCPU(p.Cmd.Process.Pid, h.CPUs); err != nil {
			_ = p.Cmd.Process.Kill()
			_ = p.Cmd.Wait()
			os.RemoveAll(dir)
			return nil, err
		}
	}
	go func() { _ = p.Cmd.Wait(); uncap(); os.RemoveAll(dir); close(p.Exited) }()
	return p, nil
}

// Wait waits until the process writes its address and answers /healthz,
// at most timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.URL == "" {
			if b, err := os.ReadFile(p.addrFile); err == nil && strings.HasSuffix(string(b), "\n") {
				p.URL = strings.TrimSpace(string(b))
			}
		}
		if p.URL != "" {
			req, _ := http.NewRequest("GET", p.URL+"/healthz", nil)
			req.Header.Set("Authorization", "Bearer "+p.token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-p.Exited:
			return fmt.Errorf("hq exited before serving: %v\n%s", p.Cmd.ProcessState, p.Log.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hq did not serve within %v\n%s", timeout, p.Log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the process at once (SIGKILL: no shutdown, no rollback but the
// server's own on the dropped connections) and waits for it.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Exited
}

// Stop asks the process to shut down (SIGTERM), killing it after 10 s.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// PeakRSS is the process's peak resident set (VmHWM of
// /proc/<pid>/status) in bytes while it runs; 0 where there is no /proc.
func (p *Proc) PeakRSS() int64 {
	return PeakRSS(p.Cmd.Process.Pid)
}

// PeakRSS reads VmHWM of a running process, in bytes (0 if unknown).
func PeakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// FreePort returns a loopback TCP port free at the moment of asking.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

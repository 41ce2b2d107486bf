//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"posagent/agent"
	"posagent/agent/api"
	"posagent/agent/events"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// e2eWait bounds every wait for something that is normally instant; the CI
// box is slow and busy, so it is generous.
const e2eWait = 30 * time.Second

const (
	e2eToken = "e2e-api-token-0123456789abcdef"
	e2ePAN   = "6222021234567890123"
	// A swipe as a serial MSR sends it: track 1, track 2, CR.
	e2eSwipe = "%B" + e2ePAN + "^ZHANG/SAN^2512101000000?;" + e2ePAN + "=25121010000000?\r"
	// The member QR printed on the card and shown in the app.
	e2eQR = "MEMBER:" + e2ePAN + "\r"
)

// buildPosagent compiles the command into a temp dir once per test binary run.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

func buildPosagent(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "posagent-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "posagent")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(gobin, append(args, ".")...)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// TestMain removes the built binary after all tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

type fakeReader struct {
	master, slave *os.File
}

func newFakeReader(t *testing.T) *fakeReader {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return &fakeReader{master: m, slave: s}
}

func (r *fakeReader) write(t *testing.T, s string) {
	t.Helper()
	if _, err := r.master.Write([]byte(s)); err != nil {
		t.Fatalf("write to the reader: %v", err)
	}
}

var apiLogRe = regexp.MustCompile(`"?api"?[=:]"?http://(127\.0\.0\.1:[0-9]+)/`)

// apiAddr waits for the agent's "agent running" log line and returns the
// address it listens on: the config says port 0, so the kernel picks a free
// one and no other test can take it first.
func (p *agentProc) apiAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for time.Now().Before(deadline) {
		if m := apiLogRe.FindStringSubmatch(p.log.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("agent exited before it listened: %v", err)
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
	t.Fatalf("the agent did not log its API address within %v", e2eWait)
	return ""
}

// agentProc is one run of `posagent run`.
type agentProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
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

func startAgent(t *testing.T, bin, cfg string) *agentProc {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfg)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	// Not a service: the agent must log text and skip sd_notify.
	cmd.Env = append(os.Environ(), "INVOCATION_ID=", "JOURNAL_STREAM=", "NOTIFY_SOCKET=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("agent log (pid %d):\n%s", cmd.Process.Pid, log.String())
		}
	})
	return p
}

// kill9 kills the agent as a power cut would.
func (p *agentProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(e2eWait):
		t.Fatal("agent did not die after SIGKILL")
	}
}

// stop sends SIGTERM and expects a clean exit.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM; want a clean exit\n%s", err, p.log.String())
		}
	case <-time.After(e2eWait):
		t.Fatal("agent did not stop after SIGTERM")
	}
}

type e2eClient struct {
	base, token string // token: e2eToken when empty
	http        *http.Client
}

func (c *e2eClient) do(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	tok := c.token
	if tok == "" {
		tok = e2eToken
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// waitReady polls /readyz until the agent is ready with every reader online.
func (c *e2eClient) waitReady(t *testing.T, p *agentProc) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("agent exited before it was ready: %v", err)
		default:
		}
		resp, err := c.http.Get(c.base + "/readyz")
		if err == nil {
			var rd api.Readiness
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if json.Unmarshal(b, &rd) == nil && rd.Ready && rd.DevicesOnline && len(rd.Devices) == 2 {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	t.Fatalf("agent not ready with both readers online after %v; last /readyz: %s", e2eWait, last)
}

// stream subscribes to the event stream; events arrive on the channel.
func (c *e2eClient) stream(t *testing.T) <-chan events.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("events: %s", resp.Status)
	}
	ch := make(chan events.Event, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		dec := events.NewDecoder(resp.Body)
		for {
			e, err := dec.Next()
			if err != nil {
				return
			}
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return ch
}

// waitMember waits for the member-identified event and returns its data.
func waitMember(t *testing.T, ch <-chan events.Event) agent.MemberEvent {
	t.Helper()
	timeout := time.After(e2eWait)
	var seen []string
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended; saw %v", seen)
			}
			seen = append(seen, e.Type+" "+string(e.Data))
			if e.Type != events.TypeMember {
				continue
			}
			var m agent.MemberEvent
			if err := json.Unmarshal(e.Data, &m); err != nil {
				t.Fatalf("member event data: %v in %s", err, e.Data)
			}
			return m
		case <-timeout:
			t.Fatalf("no member event within %v; saw %v", e2eWait, seen)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	bin := buildPosagent(t)
	msr, scanner := newFakeReader(t), newFakeReader(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "posagent.yaml")
	cfg := fmt.Sprintf(`store: s001
till: t1
timezone: Asia/Shanghai
data_dir: %s
token_key: 00112233445566778899aabbccddeeff
api:
  listen: %s
  token: %s
cashiers: {allow_pos_without_cashier: true}
devices:
  - name: msr
    transport: serial
    path: %s
    baud: 9600
    framer: {kind: terminator, terminator: CR}
    decoder: msr
    rule: {source: track2_pan}
  - name: scanner
    transport: serial
    path: %s
    baud: 9600
    framer: {kind: terminator, terminator: CR}
    decoder: barcode
    rule: {source: barcode_regex, regex: '^MEMBER:(\d+)$', group: 1}
`, filepath.Join(dir, "data"), "127.0.0.1:0", e2eToken, msr.slave.Name(), scanner.slave.Name())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "config", "validate", "--config", cfgPath); code != 0 {
		t.Fatalf("config validate: %s%s", out, errOut)
	}

	agent := startAgent(t, bin, cfgPath)
	c := &e2eClient{base: "http://" + agent.apiAddr(t), http: &http.Client{Timeout: e2eWait}}
	c.waitReady(t, agent)
	evs := c.stream(t)

	// Enrol a member with the card number printed on the card.
	var enrolled api.EnrolResponse
	c.do(t, http.MethodPost, "/v1/members", api.EnrolRequest{EnrolID: "e2e-enrol-1", Cashier: "c1",
		Name: "Zhang San", Mobile: "13812341234", Card: e2ePAN}, &enrolled)
	id := enrolled.Member.Member.ID
	if id == "" {
		t.Fatalf("enrolment answered no member id: %+v", enrolled)
	}
	pointsBefore := enrolled.Member.Points

	// Swipe: the member appears on the event stream.
	msr.write(t, e2eSwipe)
	if m := waitMember(t, evs); m.Member.Member.ID != id || m.Device != "msr" || m.Kind != "msr" {
		t.Fatalf("swipe identified member %q by %s/%s, want %q by msr", m.Member.Member.ID, m.Device, m.Kind, id)
	} else if strings.Contains(m.Masked, e2ePAN) {
		t.Fatalf("the event carries the full card number")
	}

	// Quote and commit a sale.
	sale := api.SaleRequest{ReceiptID: "R-0001", MemberID: id, Cashier: "c1", Lines: []api.Line{
		{SKU: "6901234567890", Qty: 2, UnitPrice: 1250},
		{SKU: "6909999000011", Qty: 1, UnitPrice: 3000, Discountable: new(false)},
	}}
	var q loyalty.Quote
	c.do(t, http.MethodPost, "/v1/quote", sale, &q)
	if q.PointsEarned <= 0 || q.Due <= 0 || q.Tier == "" {
		t.Fatalf("quote for a member earns nothing: %+v", q)
	}
	var first entry.Entry
	c.do(t, http.MethodPost, "/v1/sales", sale, &first)
	if first.Sale == nil || first.Sale.Due != q.Due || first.Sale.PointsEarned != q.PointsEarned {
		t.Fatalf("committed sale differs from its quote: %+v vs %+v", first.Sale, q)
	}
	var after api.MemberSummary
	c.do(t, http.MethodPost, "/v1/members/lookup", api.LookupRequest{MemberID: id}, &after)
	if after.Points != pointsBefore+q.PointsEarned {
		t.Fatalf("points after the sale %d, want %d + %d", after.Points, pointsBefore, q.PointsEarned)
	}

	// The member QR identifies the same member.
	scanner.write(t, e2eQR)
	if m := waitMember(t, evs); m.Member.Member.ID != id || m.Device != "scanner" || m.Kind != "barcode" {
		t.Fatalf("QR identified member %q by %s/%s, want %q by scanner", m.Member.Member.ID, m.Device, m.Kind, id)
	} else if m.Member.Points != after.Points {
		t.Fatalf("member event shows %d points, lookup %d", m.Member.Points, after.Points)
	}

	// Power cut, restart.
	agent.kill9(t)
	agent = startAgent(t, bin, cfgPath)
	c.base = "http://" + agent.apiAddr(t)
	c.waitReady(t, agent)

	var again entry.Entry
	c.do(t, http.MethodPost, "/v1/sales", sale, &again)
	if again.ID() != first.ID() || again.Key != first.Key || again.Sale.Due != first.Sale.Due {
		t.Fatalf("committing the same receipt after restart gave %s, want the first sale %s", again.ID(), first.ID())
	}
	// The CLI reads the same member through the running agent.
	code, out, errOut := runCLI(t, "member", "lookup", "--id", id, "--json", "--config", cfgPath, "--api", c.base)
	if code != 0 {
		t.Fatalf("member lookup: %s", errOut)
	}
	var viaCLI api.MemberSummary
	if err := json.Unmarshal([]byte(out), &viaCLI); err != nil {
		t.Fatalf("member lookup --json: %v in %s", err, out)
	}
	if viaCLI.Points != after.Points {
		t.Fatalf("points after restart and resend %d, want unchanged %d", viaCLI.Points, after.Points)
	}

	// Clean shutdown, then the ledger checks out and holds the sale once.
	agent.stop(t)
	verify := exec.Command(bin, "ledger", "verify", "--config", cfgPath)
	if vout, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("ledger verify: %v\n%s", err, vout)
	}
	export := exec.Command(bin, "ledger", "export", "--config", cfgPath)
	var exp bytes.Buffer
	export.Stdout = &exp
	if err := export.Run(); err != nil {
		t.Fatalf("ledger export: %v", err)
	}
	sales := 0
	sc := bufio.NewScanner(&exp)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e entry.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a header or summary line
		}
		if e.Kind == entry.KindSale && e.Key == "R-0001" {
			sales++
		}
	}
	if sales != 1 {
		t.Fatalf("the ledger holds sale R-0001 %d times, want once", sales)
	}
	if strings.Contains(agent.log.String(), e2ePAN) {
		t.Fatalf("the full card number appears in the agent log")
	}
}

// TestRunUnderSystemd starts the agent as systemd would (Type=notify):
// READY=1 arrives on $NOTIFY_SOCKET once the API serves, logs are JSON,
// SIGTERM ends it cleanly after STOPPING=1.
func TestRunUnderSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	bin := buildPosagent(t)
	sockDir, err := os.MkdirTemp("", "sdn") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sockPath := filepath.Join(sockDir, "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "posagent.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: %s\napi:\n  listen: 127.0.0.1:0\n", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, "INVOCATION_ID=0123456789abcdef", "JOURNAL_STREAM=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})

	buf := make([]byte, 4096)
	sock.SetReadDeadline(time.Now().Add(e2eWait))
	n, err := sock.Read(buf)
	if err != nil {
		t.Fatalf("no readiness notification: %v", err)
	}
	msg := string(buf[:n])
	m := regexp.MustCompile(`serving on http://(127\.0\.0\.1:[0-9]+)/`).FindStringSubmatch(msg)
	if !strings.HasPrefix(msg, "READY=1\n") || m == nil {
		t.Fatalf("notification %q, want READY=1 with the API address", msg)
	}
	listen := m[1]
	// Ready means serving: the API answers right away.
	resp, err := http.Get("http://" + listen + "/healthz")
	if err != nil {
		t.Fatalf("READY=1 was sent but the API does not answer: %v", err)
	}
	resp.Body.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n, err = sock.Read(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Fatalf("stop notification %q, %v", buf[:n], err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(e2eWait):
		t.Fatal("agent did not stop after SIGTERM")
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) == 0 {
		t.Fatal("no log")
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil {
			t.Fatalf("under systemd every log line must be a JSON record, got %q", l)
		}
	}
}

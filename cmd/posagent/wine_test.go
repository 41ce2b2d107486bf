//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"posagent/agent/api"
	"posagent/ledger/entry"
)

// The Windows build run for real under Wine: the cross-compiled posagent.exe
// starts with a config, serves the local API to a client on Linux, survives
// a kill, stops cleanly on Ctrl+C and its ledger verifies. Compiling for
// Windows proves nothing about calls that fail only there (a directory
// fsync did: every start failed with "Access is denied").
//
// Wine 8 lacks ProcessPrng in bcryptprimitives.dll, which Go's Windows
// runtime needs at start; testdata/wine/bcryptprimitives.c is a test-only
// shim built with mingw-w64 and put into the throwaway prefix.

const (
	// wineBootWait bounds creating a fresh prefix (wineboot): about 20 s on
	// a quiet box, much more on a loaded CI machine.
	wineBootWait = 4 * time.Minute
	// wineWait bounds each step of the agent under Wine (start, a request,
	// stop, verify).
	wineWait = time.Minute
)

// wineTools finds wine, wineserver and the mingw-w64 compiler. Missing tools
// skip the test on a developer's machine; CI installs them (.ci/run), so
// there a missing tool fails the test instead of skipping it silently.
func wineTools(t *testing.T) (wine, wineserver, cc string) {
	t.Helper()
	var missing []string
	look := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		return p
	}
	wine, wineserver, cc = look("wine"), look("wineserver"), look("x86_64-w64-mingw32-gcc")
	if len(missing) > 0 {
		msg := fmt.Sprintf("Windows build under Wine not tested: %s not found (apt-get install wine wine64 gcc-mingw-w64-x86-64; .ci/run does)", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return wine, wineserver, cc
}

// winePath is the Windows name of a Linux path: Wine maps / to drive Z:.
func winePath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

type winePrefix struct {
	wine string
	env  []string
}

func (w *winePrefix) command(ctx context.Context, exe string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.wine, append([]string{exe}, args...)...)
	cmd.Env = w.env
	// The console process of Wine has no children of its own to wait for;
	// a killed one must not hold the test up on its pipes.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// newWinePrefix builds the shim, creates a fresh prefix under dir, installs
// the shim into its system32 and returns how to run programs in it. The
// prefix's wineserver and everything it started are killed at cleanup.
func newWinePrefix(t *testing.T, dir string) *winePrefix {
	t.Helper()
	wine, wineserver, cc := wineTools(t)
	prefix := filepath.Join(dir, "prefix")
	w := &winePrefix{wine: wine, env: append(os.Environ(),
		"WINEPREFIX="+prefix,
		"WINEDEBUG=-all",
		// The shim instead of Wine's own bcryptprimitives; no Mono or
		// Gecko installer prompts during wineboot.
		"WINEDLLOVERRIDES=bcryptprimitives=n;mscoree,mshtml=",
		"DISPLAY=", "WAYLAND_DISPLAY=",
	)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		k := exec.CommandContext(ctx, wineserver, "-k")
		k.Env = w.env
		_ = k.Run() // nothing to kill is fine
	})

	src := filepath.Join("..", "..", "testdata", "wine")
	dll := filepath.Join(dir, "bcryptprimitives.dll")
	build := exec.Command(cc, "-shared", "-O2", "-s", "-o", dll,
		filepath.Join(src, "bcryptprimitives.c"), filepath.Join(src, "bcryptprimitives.def"), "-ladvapi32")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the ProcessPrng shim: %v\n%s", err, out)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), wineBootWait)
	defer cancel()
	boot := exec.CommandContext(ctx, wine, "wineboot", "--init")
	boot.Env = w.env
	if out, err := boot.CombinedOutput(); err != nil {
		t.Fatalf("wineboot --init: %v (after %v)\n%s", err, time.Since(start), out)
	}
	wait := exec.CommandContext(ctx, wineserver, "-w")
	wait.Env = w.env
	if out, err := wait.CombinedOutput(); err != nil {
		t.Fatalf("wineserver -w after wineboot: %v\n%s", err, out)
	}
	t.Logf("wine prefix created in %v", time.Since(start).Round(time.Millisecond))

	sys32 := filepath.Join(prefix, "drive_c", "windows", "system32")
	raw, err := os.ReadFile(dll)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys32, "bcryptprimitives.dll"), raw, 0o644); err != nil {
		t.Fatalf("install the shim into the prefix: %v", err)
	}
	return w
}

// buildWindowsExe cross-compiles the command for windows/amd64 without cgo
// (HID readers off, as in every cross build).
func buildWindowsExe(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "posagent.exe")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go build: %v\n%s", err, out)
	}
	return exe
}

// wineAgent is one `posagent.exe run` under Wine.
type wineAgent struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

var wineAPIRe = regexp.MustCompile(`api=http://(127\.0\.0\.1:[0-9]+)/`)

func startWineAgent(t *testing.T, w *winePrefix, exe, cfg string) (*wineAgent, string) {
	t.Helper()
	cmd := w.command(context.Background(), exe, "run", "--config", cfg)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &wineAgent{cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent log under Wine:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(wineWait)
	for time.Now().Before(deadline) {
		if m := wineAPIRe.FindStringSubmatch(log.String()); m != nil {
			return a, "http://" + m[1]
		}
		select {
		case err := <-a.done:
			a.done <- err
			t.Fatalf("posagent.exe run exited before it served: %v", err)
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
	t.Fatalf("posagent.exe run did not log its API address within %v", wineWait)
	return nil, ""
}

// stop presses Ctrl+C: Wine turns SIGINT into a CTRL_C_EVENT for the
// console process, which Go delivers as os.Interrupt, the agent's stop
// request on a Windows console. The agent must exit 0 after closing the
// ledger.
func (a *wineAgent) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("posagent.exe exited with %v after Ctrl+C; want a clean exit\n%s", err, a.log.String())
		}
	case <-time.After(wineWait):
		t.Fatalf("posagent.exe did not stop within %v of Ctrl+C", wineWait)
	}
	if !strings.Contains(a.log.String(), "agent stopping") {
		t.Fatalf("posagent.exe exited without shutting down:\n%s", a.log.String())
	}
}

// kill ends the agent at once, as a crash or a forced taskkill would.
func (a *wineAgent) kill(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.done:
	case <-time.After(wineWait):
		t.Fatal("posagent.exe did not die after SIGKILL")
	}
}

// waitWineHealthy polls /healthz, then reads the API token the agent generated
// on its first start (the config names none).
func waitWineHealthy(t *testing.T, c *e2eClient, a *wineAgent, tokenFile string) {
	t.Helper()
	deadline := time.Now().Add(wineWait)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-a.done:
			a.done <- err
			t.Fatalf("posagent.exe exited before /healthz answered: %v", err)
		default:
		}
		resp, err := c.http.Get(c.base + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			if resp.StatusCode == http.StatusOK {
				tok, err := os.ReadFile(tokenFile)
				if err != nil {
					t.Fatalf("the agent is up but wrote no API token: %v", err)
				}
				c.token = strings.TrimSpace(string(tok))
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	t.Fatalf("/healthz not 200 within %v; last: %s", wineWait, last)
}

func TestWindowsBuildUnderWine(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the agent and runs it under Wine")
	}
	began := time.Now()
	dir := t.TempDir()
	w := newWinePrefix(t, dir)
	exe := buildWindowsExe(t, dir)

	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "posagent.yaml")
	cfg := fmt.Sprintf("store: s001\ntill: t1\ntimezone: Asia/Shanghai\ndata_dir: '%s'\n"+
		"token_key: 00112233445566778899aabbccddeeff\napi:\n  listen: 127.0.0.1:0\n"+
		"cashiers: {allow_pos_without_cashier: true}\n", winePath(data))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	winCfg := winePath(cfgPath)

	started := time.Now()
	agent, base := startWineAgent(t, w, exe, winCfg)
	c := &e2eClient{base: base, http: &http.Client{Timeout: wineWait}}
	waitWineHealthy(t, c, agent, filepath.Join(data, "api.token"))
	t.Logf("posagent.exe run served /healthz %v after start", time.Since(started).Round(time.Millisecond))
	for _, f := range []string{"ledger.db", "ledger.db.wal"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Fatalf("the agent runs but %s is missing: %v", f, err)
		}
	}

	var enrolled api.EnrolResponse
	c.do(t, http.MethodPost, "/v1/members", api.EnrolRequest{EnrolID: "wine-enrol-1", Cashier: "c1",
		Name: "Zhang San", Mobile: "13812341234", Card: "6222021234567890123"}, &enrolled)
	id := enrolled.Member.Member.ID
	if id == "" {
		t.Fatalf("enrolment answered no member id: %+v", enrolled)
	}
	sale := api.SaleRequest{ReceiptID: "W-0001", MemberID: id, Cashier: "c1", Lines: []api.Line{
		{SKU: "6901234567890", Qty: 2, UnitPrice: 1250},
	}}
	var first entry.Entry
	c.do(t, http.MethodPost, "/v1/sales", sale, &first)
	if first.Sale == nil || first.Sale.Gross != 2500 || first.Sale.Due <= 0 || first.Sale.PointsEarned <= 0 {
		t.Fatalf("sale under Wine: %+v", first.Sale)
	}

	// A crash: the reopened ledger (write-ahead log replayed on Windows)
	// still holds the sale, and resending it returns the first entry.
	agent.kill(t)
	agent, c.base = startWineAgent(t, w, exe, winCfg)
	waitWineHealthy(t, c, agent, filepath.Join(data, "api.token"))
	var again entry.Entry
	c.do(t, http.MethodPost, "/v1/sales", sale, &again)
	if again.ID() != first.ID() || again.Sale == nil || again.Sale.Due != first.Sale.Due {
		t.Fatalf("resending the sale after a crash gave %s, want the first sale %s", again.ID(), first.ID())
	}
	var second entry.Entry
	c.do(t, http.MethodPost, "/v1/sales", api.SaleRequest{ReceiptID: "W-0002", MemberID: id, Cashier: "c1",
		Lines: []api.Line{{SKU: "6909999000011", Qty: 1, UnitPrice: 3000}}}, &second)
	var member api.MemberSummary
	c.do(t, http.MethodPost, "/v1/members/lookup", api.LookupRequest{MemberID: id}, &member)
	if want := enrolled.Member.Points + first.Sale.PointsEarned + second.Sale.PointsEarned; member.Points != want {
		t.Fatalf("points after two sales %d, want %d", member.Points, want)
	}

	stopping := time.Now()
	agent.stop(t)
	t.Logf("posagent.exe stopped cleanly %v after Ctrl+C", time.Since(stopping).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), wineWait)
	defer cancel()
	out, err := w.command(ctx, exe, "ledger", "verify", "--config", winCfg).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nOK: ")) {
		t.Fatalf("posagent.exe ledger verify: %v\n%s", err, out)
	}
	var exp bytes.Buffer
	export := w.command(ctx, exe, "ledger", "export", "--config", winCfg)
	export.Stdout = &exp
	if err := export.Run(); err != nil {
		t.Fatalf("posagent.exe ledger export: %v", err)
	}
	sales := map[string]int{}
	sc := bufio.NewScanner(&exp)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e entry.Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Kind == entry.KindSale {
			sales[e.Key]++
		}
	}
	if sales["W-0001"] != 1 || sales["W-0002"] != 1 || len(sales) != 2 {
		t.Fatalf("the ledger holds sales %v, want W-0001 and W-0002 once each", sales)
	}

	// A compact copy is created and linked into place the Windows way too.
	compact := filepath.Join(data, "ledger.compact.db")
	if out, err := w.command(ctx, exe, "ledger", "compact", "--config", winCfg, "--out", winePath(compact)).CombinedOutput(); err != nil {
		t.Fatalf("posagent.exe ledger compact: %v\n%s", err, out)
	}
	compactCfg := filepath.Join(dir, "compact.yaml")
	if err := os.WriteFile(compactCfg, []byte(cfg+fmt.Sprintf("ledger:\n  path: '%s'\n", winePath(compact))), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = w.command(ctx, exe, "ledger", "verify", "--config", winePath(compactCfg)).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nOK: ")) {
		t.Fatalf("posagent.exe ledger verify of the compact copy: %v\n%s", err, out)
	}
	t.Logf("whole Windows run under Wine: %v", time.Since(began).Round(time.Millisecond))
}

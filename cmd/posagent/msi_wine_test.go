//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"posagent/agent/api"
	"posagent/ledger/entry"
)

// The release .msi under Wine: msiexec installs it, Wine's service manager
// starts the agent as a Windows service, a client on Linux sells through its
// API, the service stops, msiexec removes it, and the ledger stays. This is
// the path the SCM takes on Windows (svc.Run, the control dispatcher, stop
// requests), which running posagent.exe on a console does not cover.
func TestMSIServiceUnderWine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release .msi and installs it under Wine")
	}
	var missing []string
	for _, tool := range []string{"wixl", "msibuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the .msi is not tested: %s not found (apt-get install wixl msitools; .ci/run does)", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	began := time.Now()
	dir := t.TempDir()
	w := newWinePrefix(t, dir)

	// The package as released: scripts/release with only the Windows target,
	// packaging the exe built as TestWindowsBuildUnderWine builds it (so the
	// build cache serves both).
	winExe := buildWindowsExe(t, dir)
	dist := filepath.Join(dir, "dist")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	rel := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "run", "./scripts/release",
		"-out", dist, "-version", "1.0.0", "-targets", "windows/amd64", "-windows-exe", winExe)
	rel.Dir = filepath.Join("..", "..")
	if out, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("go run ./scripts/release: %v\n%s", err, out)
	}
	msi := filepath.Join(dist, "posagent-1.0.0-windows-amd64.msi")
	t.Logf("release .msi built %v after start", time.Since(began).Round(time.Second))

	// Wine's server, and its services.exe with it, stops once the last
	// program in the prefix exits; the next wine command starts it again,
	// which Wine treats as a boot and so starts every automatic service. A
	// console held open keeps one server (one boot) for the whole test, so
	// the service runs only when `sc start` says.
	keeper := w.command(context.Background(), "cmd")
	keepIn, err := keeper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := keeper.Start(); err != nil {
		t.Fatalf("wine cmd: %v", err)
	}
	t.Cleanup(func() {
		keepIn.Close()
		_ = keeper.Process.Kill()
		_ = keeper.Wait()
	})

	drive := filepath.Join(dir, "prefix", "drive_c")
	exe := filepath.Join(drive, "Program Files", "posagent", "posagent.exe")
	data := filepath.Join(drive, "ProgramData", "posagent")
	cfgPath := filepath.Join(data, "posagent.yaml")
	const winCfg = `C:\ProgramData\posagent\posagent.yaml`

	// Output goes through a file, not a pipe: processes a command leaves
	// behind in the running prefix (msiexec's) inherit it, and a pipe would
	// keep Wait waiting for them.
	outFile := filepath.Join(dir, "wine-output")
	wineEnv := func(env []string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wineWait)
		defer cancel()
		f, err := os.Create(outFile)
		if err != nil {
			return "", err
		}
		defer f.Close()
		cmd := w.command(ctx, args[0], args[1:]...)
		cmd.Env = append(cmd.Env, env...) // a later duplicate wins
		cmd.Stdout, cmd.Stderr = f, f
		err = cmd.Run()
		out, _ := os.ReadFile(outFile)
		return string(out), err
	}
	wine := func(args ...string) (string, error) { return wineEnv(nil, args...) }
	mustWine := func(args ...string) string {
		t.Helper()
		out, err := wine(args...)
		if err != nil {
			t.Fatalf("wine %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// msiexec's own log says why an install failed; its exit status does not.
	msiexec := func(op string) {
		t.Helper()
		logPath := filepath.Join(dir, "msiexec"+strings.TrimPrefix(op, "/")+".log")
		// Wine's own errors too, which WINEDEBUG=-all otherwise hides.
		out, err := wineEnv([]string{"WINEDEBUG=err+all"}, "msiexec", op, winePath(msi), "/qn", "/l*v", winePath(logPath))
		if err != nil {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("wine msiexec %s: %v\n%s\nmsiexec log:\n%s", op, err, out, log)
		}
	}
	// msiexec starts once the boot the console began has the RPC service
	// (which Windows Installer's COM calls need) running, not racing it.
	waitServiceState(t, wine, "rpcss", "RUNNING")
	installed := time.Now()
	msiexec("/i")
	t.Logf("msiexec /i took %v", time.Since(installed).Round(time.Millisecond))
	for _, p := range []string{exe, cfgPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("after msiexec /i: %v", err)
		}
	}
	reg := mustWine("reg", "query", `HKLM\SYSTEM\CurrentControlSet\Services\posagent`)
	for _, want := range []string{`C:\Program Files\posagent\posagent.exe run --config "C:\ProgramData\posagent\posagent.yaml"`,
		"LocalSystem", "Start    REG_DWORD    0x2"} {
		if !strings.Contains(reg, want) {
			t.Fatalf("the registered service lacks %q:\n%s", want, reg)
		}
	}

	// The install does not start the service. Should a boot have started it
	// anyway (on the packaged config, as after a reboot on Windows), stop it
	// and clear what it wrote before the test's own config.
	if out, err := wine("sc", "stop", "posagent"); err != nil {
		t.Logf("sc stop before configuring (not running is fine): %v %s", err, strings.TrimSpace(out))
	}
	waitServiceState(t, wine, "posagent", "STOPPED")
	ents, _ := os.ReadDir(data)
	for _, e := range ents {
		if e.Name() != "posagent.yaml" {
			os.RemoveAll(filepath.Join(data, e.Name()))
		}
	}
	port := freePort(t)
	cfg := fmt.Sprintf("store: s001\ntill: t1\ntimezone: Asia/Shanghai\n"+
		"token_key: 00112233445566778899aabbccddeeff\napi:\n  listen: 127.0.0.1:%d\n"+
		"cashiers: {allow_pos_without_cashier: true}\n", port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	mustWine("sc", "start", "posagent")
	waitServiceState(t, wine, "posagent", "RUNNING")
	// Never closed: the service's process is not ours to wait for.
	svcAgent := &wineAgent{done: make(chan error, 1)}
	c := &e2eClient{base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: wineWait}}
	waitWineHealthy(t, c, svcAgent, filepath.Join(data, "api.token"))
	t.Logf("the service served /healthz %v after sc start", time.Since(started).Round(time.Millisecond))
	for _, f := range []string{"ledger.db", "ledger.db.wal"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Fatalf("the service runs but %s is not in ProgramData\\posagent: %v", f, err)
		}
	}

	var enrolled api.EnrolResponse
	c.do(t, http.MethodPost, "/v1/members", api.EnrolRequest{EnrolID: "msi-enrol-1", Cashier: "c1",
		Name: "Li Si", Mobile: "13912341234", Card: "6222029876543210123"}, &enrolled)
	id := enrolled.Member.Member.ID
	if id == "" {
		t.Fatalf("enrolment answered no member id: %+v", enrolled)
	}
	var sale entry.Entry
	c.do(t, http.MethodPost, "/v1/sales", api.SaleRequest{ReceiptID: "M-0001", MemberID: id, Cashier: "c1",
		Lines: []api.Line{{SKU: "6901234567890", Qty: 3, UnitPrice: 1000}}}, &sale)
	if sale.Sale == nil || sale.Sale.Gross != 3000 || sale.Sale.PointsEarned <= 0 {
		t.Fatalf("sale through the service: %+v", sale.Sale)
	}

	stopping := time.Now()
	mustWine("sc", "stop", "posagent")
	q := waitServiceState(t, wine, "posagent", "STOPPED")
	if !regexp.MustCompile(`WIN32_EXIT_CODE\s*:\s*0 `).MatchString(q) {
		t.Fatalf("the service stopped with an error:\n%s", q)
	}
	t.Logf("sc stop: stopped %v after the request", time.Since(stopping).Round(time.Millisecond))
	if out, err := wine(exe, "ledger", "verify", "--config", winCfg); err != nil || !strings.Contains(out, "\nOK: ") {
		t.Fatalf("ledger verify after the service stopped: %v\n%s", err, out)
	}

	msiexec("/x")
	if out, err := wine("sc", "query", "posagent"); err == nil && strings.Contains(out, "SERVICE_NAME: posagent") {
		t.Fatalf("the service is still registered after msiexec /x:\n%s", out)
	}
	if _, err := os.Stat(exe); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("posagent.exe is still in Program Files after msiexec /x (%v)", err)
	}
	for _, f := range []string{"posagent.yaml", "ledger.db", "api.token"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("msiexec /x removed ProgramData\\posagent\\%s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(cfgPath); !bytes.Equal(b, []byte(cfg)) {
		t.Errorf("msiexec /x changed the config:\n%s", b)
	}
	t.Logf("whole .msi run under Wine: %v", time.Since(began).Round(time.Millisecond))
}

var serviceStateRe = regexp.MustCompile(`STATE\s*:\s*\d+\s+(\w+)`)

// waitServiceState polls `sc query name` until the service is in state
// (RUNNING, STOPPED) and returns the last answer.
func waitServiceState(t *testing.T, wine func(...string) (string, error), name, state string) string {
	t.Helper()
	deadline := time.Now().Add(wineWait)
	var out string
	for time.Now().Before(deadline) {
		var err error
		out, err = wine("sc", "query", name)
		if m := serviceStateRe.FindStringSubmatch(out); err == nil && m != nil && m[1] == state {
			return out
		}
		if state == "RUNNING" && strings.Contains(out, "STOPPED") {
			t.Fatalf("the service stopped instead of running:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond) // polling interval
	}
	t.Fatalf("the service %s is not %s within %v:\n%s", name, state, wineWait, out)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

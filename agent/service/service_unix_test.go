//go:build !windows

package service

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"posagent/scripts"
)

func fakeBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "posagent")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho fake\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInstallIntoRootWritesEveryFile(t *testing.T) {
	root := t.TempDir()
	var out bytes.Buffer
	o := Options{Root: root, Binary: fakeBinary(t), Config: "/etc/posagent/till.yaml",
		DefaultConfig: []byte("store: s1\n"), Out: &out,
		exec: func(context.Context, string, ...string) ([]byte, error) {
			t.Fatal("--root must not run any command")
			return nil, nil
		}}
	if err := Install(context.Background(), o); err != nil {
		t.Fatalf("install: %v", err)
	}
	for _, p := range Paths() {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", scripts.UnitName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/posagent run --config /etc/posagent/till.yaml\n") {
		t.Errorf("ExecStart not pointed at the binary and config:\n%s", unit)
	}
	bin, err := os.Stat(filepath.Join(root, "usr/local/bin/posagent"))
	if err != nil || bin.Mode().Perm() != 0o755 {
		t.Errorf("binary: %v mode %v", err, bin.Mode())
	}
	cfg, err := os.Stat(filepath.Join(root, "etc/posagent/till.yaml"))
	if err != nil || cfg.Mode().Perm() != 0o640 {
		t.Fatalf("config: %v", err)
	}
	if !strings.Contains(out.String(), "skipped") {
		t.Errorf("no message about skipping systemctl:\n%s", out.String())
	}

	// A second install keeps the config the operator edited.
	if err := os.WriteFile(filepath.Join(root, "etc/posagent/till.yaml"), []byte("store: edited\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Install(context.Background(), o); err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/posagent/till.yaml")); string(b) != "store: edited\n" {
		t.Errorf("reinstall overwrote the config: %q", b)
	}

	out.Reset()
	if err := Uninstall(context.Background(), o); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	for _, p := range Paths()[1:] {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after uninstall (%v)", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/posagent/till.yaml")); err != nil {
		t.Errorf("uninstall removed the config: %v", err)
	}
}

func TestInstallRejectsRelativeConfig(t *testing.T) {
	err := Install(context.Background(), Options{Root: t.TempDir(), Binary: fakeBinary(t), Config: "posagent.yaml"})
	if err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("want an absolute-path error, got %v", err)
	}
}

func TestActivateRunsTheServiceManager(t *testing.T) {
	var calls []string
	o := Options{
		exec: func(_ context.Context, name string, args ...string) ([]byte, error) {
			calls = append(calls, name+" "+strings.Join(args, " "))
			return nil, nil
		},
		lookPath: func(name string) (string, error) { return "/usr/bin/" + name, nil },
	}
	if err := o.activate(context.Background(), filepath.Join(t.TempDir(), "cfg.yaml"), false); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(calls, "\n")
	for _, want := range []string{"systemd-sysusers " + sysusersPath, "systemctl daemon-reload", "systemctl enable posagent.service"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Index(got, "daemon-reload") > strings.Index(got, "enable") {
		t.Errorf("enable ran before daemon-reload:\n%s", got)
	}
}

func TestActivateReportsSystemctlFailure(t *testing.T) {
	o := Options{
		exec: func(_ context.Context, name string, args ...string) ([]byte, error) {
			if name == "systemctl" && args[0] == "enable" {
				return []byte("Failed to enable unit"), errors.New("exit status 1")
			}
			return nil, nil
		},
		lookPath: func(name string) (string, error) { return "/usr/bin/" + name, nil },
	}
	err := o.activate(context.Background(), "/nonexistent", false)
	if err == nil || !strings.Contains(err.Error(), "Failed to enable unit") {
		t.Fatalf("want systemctl's message, got %v", err)
	}
}

func TestStartStopStatusWithoutSystemd(t *testing.T) {
	o := Options{lookPath: func(string) (string, error) { return "", exec.ErrNotFound }}
	for name, f := range map[string]func() error{
		"start":  func() error { return Start(context.Background(), o) },
		"stop":   func() error { return Stop(context.Background(), o) },
		"status": func() error { _, err := Status(context.Background(), o); return err },
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "posagent run") {
			t.Errorf("%s: want advice to use `posagent run`, got %v", name, err)
		}
	}
}

func TestStatusMapsSystemctlExitCodes(t *testing.T) {
	sh := func(code string) func(context.Context, string, ...string) ([]byte, error) {
		return func(ctx context.Context, _ string, _ ...string) ([]byte, error) {
			return exec.CommandContext(ctx, "sh", "-c", "echo inactive; exit "+code).CombinedOutput()
		}
	}
	look := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	out, err := Status(context.Background(), Options{exec: sh("3"), lookPath: look})
	if err != nil || !strings.Contains(out, "inactive") {
		t.Errorf("stopped unit: out %q err %v", out, err)
	}
	if _, err := Status(context.Background(), Options{exec: sh("4"), lookPath: look}); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("missing unit: want ErrNotInstalled, got %v", err)
	}
}

// listenNotify listens where NOTIFY_SOCKET now points, as systemd does for
// a Type=notify unit; both are undone at test end.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short path: unix socket names are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func TestNotifySendsToTheSocket(t *testing.T) {
	conn := listenNotify(t)
	if err := Notify("READY=1\nSTATUS=serving"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1\nSTATUS=serving" {
		t.Errorf("got %q", got)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET Notify must do nothing, got %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative")
	if err := Notify("READY=1"); err == nil {
		t.Error("a relative NOTIFY_SOCKET must be an error")
	}
}

func TestRunNotifiesReadyAndStopsOnCancel(t *testing.T) {
	conn := listenNotify(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, nil, func(ctx context.Context, ready func(string)) error {
			ready("serving on 127.0.0.1:1")
			<-ctx.Done()
			return nil
		})
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "READY=1") {
		t.Fatalf("ready: %q %v", buf[:n], err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	n, err = conn.Read(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Fatalf("stopping: %q %v", buf[:n], err)
	}
}

func TestIsServiceFromSystemdEnvironment(t *testing.T) {
	t.Setenv("INVOCATION_ID", "")
	t.Setenv("JOURNAL_STREAM", "")
	if IsService() {
		t.Fatal("no systemd variables: not a service")
	}
	t.Setenv("INVOCATION_ID", "0123")
	if !IsService() {
		t.Fatal("INVOCATION_ID set: a service")
	}
	var buf bytes.Buffer
	log, done := NewLogger(&buf, nil)
	defer done()
	log.Info("hello", "k", 1)
	if !strings.HasPrefix(buf.String(), "{") {
		t.Errorf("service logs must be JSON, got %q", buf.String())
	}
}

func TestInstallCopiesTheGivenConfig(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(src, []byte("store: s42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := Options{Root: root, Binary: fakeBinary(t), ConfigFile: src, DefaultConfig: []byte("store: default\n"), Out: &out}
	if err := Install(context.Background(), o); err != nil {
		t.Fatalf("install: %v", err)
	}
	dst := filepath.Join(root, DefaultConfigPath)
	if b, err := os.ReadFile(dst); err != nil || string(b) != "store: s42\n" {
		t.Fatalf("installed config %q %v, want the given one", b, err)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system", scripts.UnitName))
	if !strings.Contains(string(unit), "run --config "+DefaultConfigPath+"\n") {
		t.Errorf("unit not pointed at the installed config:\n%s", unit)
	}

	// The same file again: nothing replaced, no backup.
	out.Reset()
	if err := Install(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already matches") {
		t.Errorf("want a note that the config matches:\n%s", out.String())
	}

	// A different config already there is saved, and the operator told.
	if err := os.WriteFile(dst, []byte("store: edited\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Install(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	baks, _ := filepath.Glob(dst + ".previous-*")
	if len(baks) != 1 || !strings.Contains(out.String(), baks[0]) {
		t.Fatalf("backups %v, output:\n%s", baks, out.String())
	}
	if b, _ := os.ReadFile(baks[0]); string(b) != "store: edited\n" {
		t.Errorf("backup holds %q", b)
	}
	if b, _ := os.ReadFile(dst); string(b) != "store: s42\n" {
		t.Errorf("config now %q", b)
	}

	o.ConfigFile = filepath.Join(t.TempDir(), "missing.yaml")
	if err := Install(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing file: %v", err)
	}
}

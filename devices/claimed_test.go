//go:build linux

package devices_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"posagent/devices"
	"posagent/devices/internal/devtest"
	"posagent/devices/token"
)

// claimedChildEnv carries the port path to the helper process; when it is
// set the test binary is that helper.
const claimedChildEnv = "POSAGENT_TEST_CLAIMED_CHILD_PORT"

// claimedEventPrefix marks the helper's event lines among the test
// binary's own output (PASS, logs).
const claimedEventPrefix = "claimed-child-event "

// TestClaimedByAnotherProcess drives the "claimed by another process" state
// with a real exclusive hold. Root ignores TIOCEXCL, so the manager runs in
// a helper process as the unprivileged user nobody while this process holds
// the port exclusively; once the hold is released the manager must retry,
// come online and read a swipe.
func TestClaimedByAnotherProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the manager runs as user nobody in a helper process, which only root can start")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("needs the unprivileged user nobody to run the manager as: %v", err)
	}
	uid, err1 := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(nobody.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		t.Skipf("user nobody has no numeric uid/gid: %v", err)
	}

	p := devtest.NewPty(t)
	if err := os.Chmod(p.Path, 0o666); err != nil {
		t.Fatalf("make %s accessible to nobody: %v", p.Path, err)
	}
	ioctl := func(req uint) {
		t.Helper()
		rc, err := p.Slave.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var ierr error
		if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetInt(int(fd), req, 0) }); err != nil {
			t.Fatal(err)
		}
		if ierr != nil {
			t.Fatalf("ioctl %#x on %s: %v", req, p.Path, ierr)
		}
	}
	// Hold the port the way another posagent or a terminal program would.
	ioctl(unix.TIOCEXCL)

	bin := executableCopy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*devtest.Wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestClaimedChild$", "-test.count=1", "-test.timeout=60s")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), claimedChildEnv+"="+p.Path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var stderr devtest.Buffer
	cmd.Stderr = &stderr
	// The helper stops when its stdin closes, so it cannot outlive us.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("cannot start the helper as nobody here (no setuid, or %s not executable): %v", os.TempDir(), err)
		}
		t.Fatal(err)
	}

	events := make(chan devices.Event)
	stop := make(chan struct{})
	var output devtest.Buffer // the helper's other stdout lines, for failure messages
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), claimedEventPrefix)
			if !ok {
				fmt.Fprintln(&output, sc.Text())
				continue
			}
			var e devices.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				fmt.Fprintf(&output, "bad event line %q: %v\n", line, err)
				continue
			}
			select {
			case events <- e:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		stdin.Close()
		cmd.Process.Kill()
		<-scanned // EOF once the helper is gone; Wait must follow the reads
		cmd.Wait()
	})

	next := func(what string, pred func(devices.Event) bool) (devices.Event, []devices.Event) {
		t.Helper()
		var skipped []devices.Event
		deadline := time.NewTimer(devtest.Wait)
		defer deadline.Stop()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("helper exited while waiting for %s; saw %s\nstdout:\n%s\nstderr:\n%s", what, describe(skipped), output.String(), stderr.String())
				}
				if pred(e) {
					return e, skipped
				}
				skipped = append(skipped, e)
			case <-deadline.C:
				t.Fatalf("timed out waiting for %s; saw %s\nstderr:\n%s", what, describe(skipped), stderr.String())
			}
		}
	}

	e, skipped := next("claimed", func(e devices.Event) bool { return e.Status != nil && e.Status.State == devices.StateClaimed })
	if len(skipped) > 0 {
		t.Errorf("events before claimed: %s", describe(skipped))
	}
	if e.Status.Online || e.Device != "msr" || e.Till != "T1" {
		t.Errorf("claimed event %+v %+v, want msr/T1 offline", e, *e.Status)
	}
	for _, want := range []string{p.Path, "in use by another process", "close the other program"} {
		if !strings.Contains(e.Status.Detail, want) {
			t.Errorf("claimed detail %q does not say %q", e.Status.Detail, want)
		}
	}

	// Release the hold: the manager's next retry must open the port.
	ioctl(unix.TIOCNXCL)
	e, skipped = next("online", online)
	if len(skipped) > 0 {
		t.Errorf("events between claimed and online (a failure is reported once): %s", describe(skipped))
	}
	if e.Status.State != devices.StateEnabled || !strings.Contains(e.Status.Detail, p.Path) {
		t.Errorf("online event %+v, want enabled on %s", *e.Status, p.Path)
	}

	p.Write(t, []byte(msrSwipe))
	e, skipped = next("swipe", isData)
	if len(skipped) > 0 {
		t.Errorf("events before the swipe: %s", describe(skipped))
	}
	if want := token.Hash(testKey, pan); e.Data.TokenHash != want || e.Data.Masked != token.Mask(pan) {
		t.Errorf("swipe read %+v, want token %s", *e.Data, token.Mask(pan))
	}
}

// executableCopy copies the test binary where user nobody can run it: the
// build directory and t.TempDir() may be private to root.
func executableCopy(t *testing.T) string {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "posagent-claimed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, "devices.test")
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	// Umask may have narrowed the mode given to OpenFile.
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestClaimedChild is the helper process of TestClaimedByAnotherProcess:
// it runs a manager on the port and prints every event as a JSON line
// until a swipe is read, its stdin closes or the deadline passes.
func TestClaimedChild(t *testing.T) {
	path := os.Getenv(claimedChildEnv)
	if path == "" {
		t.Skip("helper process of TestClaimedByAnotherProcess; runs only when started by it")
	}
	m, err := devices.NewManager([]devices.Config{{Name: "msr", Till: "T1", Path: path, Decoder: "msr"}},
		testKey, nil, devices.WithBackoff(5*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), devtest.Wait)
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	for e := range m.Events() {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%s%s\n", claimedEventPrefix, b)
		if e.Kind == devices.KindData {
			cancel()
		}
	}
	if err := <-done; err != nil {
		t.Error(err)
	}
}

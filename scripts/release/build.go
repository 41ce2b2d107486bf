package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// built is one target's binary.
type built struct {
	target
	dir  string // also holds generated files (the packaged unit)
	bin  string
	hid  string // what HID support the binary has, in words
	libc string // minimum glibc version of a cgo binary ("" without cgo)
}

// cgoCompiler is the C compiler a target is built with, "" for CGO_ENABLED=0.
// HID readers (github.com/karalabe/hid) need cgo. linux/amd64 is built with
// the host's compiler (libusb is compiled in, so only glibc is needed at run
// time). linux/arm64 is built with cgo only where the Debian cross compiler
// is installed; the windows build has no cgo, as in the Wine test.
func cgoCompiler(t target) string {
	switch {
	case t.os == "linux" && t.arch == "amd64" && runtime.GOOS == "linux" && runtime.GOARCH == "amd64":
		return "gcc"
	case t.os == "linux" && t.arch == "arm64":
		if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err == nil {
			return "aarch64-linux-gnu-gcc"
		}
	}
	return ""
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func build(ctx context.Context, root, dir string, t target, st stamp) (built, error) {
	b := built{target: t, dir: dir, bin: filepath.Join(dir, "posagent")}
	if t.os == "windows" {
		b.bin += ".exe"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.date=%s", st.version, st.commit, st.date)
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", b.bin, "./cmd/posagent")
	cmd.Dir = root
	cc := cgoCompiler(t)
	cmd.Env = append(os.Environ(), "GOOS="+t.os, "GOARCH="+t.arch, "GOFLAGS=-mod=readonly")
	if cc != "" {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1", "CC="+cc)
		b.hid = "HID readers built in (cgo, " + cc + ")"
	} else {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		b.hid = "no HID readers (built without cgo; serial and evdev readers work)"
		if t.os == "windows" {
			b.hid = "no HID readers (built without cgo; serial readers work)"
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return b, fmt.Errorf("go build for %s/%s: %v\n%s", t.os, t.arch, err, out)
	}
	if cc != "" && t.os == "linux" {
		v, err := minGlibc(b.bin)
		if err != nil {
			return b, err
		}
		b.libc = v
	}
	return b, nil
}

// prebuilt takes a posagent.exe built (and signed) elsewhere; its version
// is whatever it was stamped with.
func prebuilt(exe, dir string, t target) (built, error) {
	data, err := os.ReadFile(exe)
	if err != nil {
		return built{}, fmt.Errorf("-windows-exe: %w", err)
	}
	b := built{target: t, dir: dir, bin: filepath.Join(dir, "posagent.exe"), hid: "prebuilt " + exe}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}
	return b, os.WriteFile(b.bin, data, 0o755)
}

// minGlibc is the newest GLIBC_x.y symbol version the binary imports: the
// oldest C library it runs with.
func minGlibc(bin string) (string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	syms, err := f.ImportedSymbols()
	if err != nil {
		return "", fmt.Errorf("%s: imported symbols: %w", bin, err)
	}
	best := ""
	for _, s := range syms {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if ok && newerVersion(v, best) {
			best = v
		}
	}
	return best, nil
}

// newerVersion compares dotted numbers.
func newerVersion(a, b string) bool {
	if b == "" {
		return a != ""
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x > y
		}
	}
	return false
}

// checkTools fails early, saying what to install, rather than after the
// slow builds.
func checkTools(ts []target) error {
	var missing []string
	need := func(tool, pkg string) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", tool, pkg))
		}
	}
	for _, t := range ts {
		if cc := cgoCompiler(t); cc == "gcc" {
			need("gcc", "gcc")
		}
		if t.os == "windows" {
			need("wixl", "wixl")
			need("msibuild", "msitools")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s; or leave the target out with -targets", strings.Join(missing, ", "))
	}
	return nil
}

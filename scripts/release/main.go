// Command release builds every release artifact of posagent into one
// directory: for Linux amd64 and arm64 a tarball, a .deb and an .rpm; for
// Windows amd64 an .msi; and SHA256SUMS over all of them.
//
//	go run ./scripts/release [-out dist] [-version 1.2.0] [-targets linux/amd64,linux/arm64,windows/amd64]
//
// The version comes from `git describe --tags --always --dirty` unless given
// and is stamped into the binary with -X main.version/commit/date. The build
// date is the commit's, so the same commit gives the same binaries.
//
// Packages are built with nfpm as a library (scripts/packaging/nfpm.yaml)
// and the .msi with wixl and msibuild (Debian: apt-get install wixl msitools)
// from scripts/packaging/posagent.wxs. docs/service.md ("Packages") says what
// each holds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "dist", "directory for the artifacts (created; existing artifacts of the same names are replaced)")
	flag.StringVar(&o.version, "version", "", "version to stamp and package (default: git describe --tags --always --dirty)")
	flag.StringVar(&o.targets, "targets", strings.Join(allTargets, ","), "comma-separated GOOS/GOARCH list to build")
	flag.StringVar(&o.windowsExe, "windows-exe", "", "package this posagent.exe (e.g. one signed elsewhere) into the .msi instead of building it")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "release: unexpected argument %q (flags only; see -h)\n", flag.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	started := time.Now()
	arts, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	for _, a := range arts {
		fmt.Printf("%-60s %10d bytes\n", a.rel, a.size)
	}
	fmt.Printf("%d artifacts and SHA256SUMS in %s (%v)\n", len(arts)-1, o.out, time.Since(started).Round(time.Second))
}

var allTargets = []string{"linux/amd64", "linux/arm64", "windows/amd64"}

type options struct {
	out, version, targets string
	windowsExe            string // prebuilt posagent.exe for the .msi
}

type artifact struct {
	rel  string // name inside the output directory
	size int64
}

func run(ctx context.Context, o options) ([]artifact, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return nil, err
	}
	// nfpm resolves the sources in nfpm.yaml relative to the working
	// directory, and wixl those of the .wxs likewise.
	if err := os.Chdir(root); err != nil {
		return nil, err
	}
	targets, err := parseTargets(o.targets)
	if err != nil {
		return nil, err
	}
	if err := checkTools(targets); err != nil {
		return nil, err
	}
	st, err := stampFromGit(ctx, root, o.version)
	if err != nil {
		return nil, err
	}
	fmt.Printf("posagent %s (package version %s, commit %.12s, %s)\n", st.version, st.pkgVersion, st.commit, st.date)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "posagent-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	var files []string
	for _, t := range targets {
		var b built
		if t.os == "windows" && o.windowsExe != "" {
			b, err = prebuilt(o.windowsExe, filepath.Join(work, t.os+"-"+t.arch), t)
		} else {
			b, err = build(ctx, root, filepath.Join(work, t.os+"-"+t.arch), t, st)
		}
		if err != nil {
			return nil, err
		}
		fmt.Printf("built %s/%s: %s\n", t.os, t.arch, b.hid)
		var made []string
		switch t.os {
		case "linux":
			made, err = linuxArtifacts(root, out, b, st)
		case "windows":
			var m string
			m, err = msi(ctx, root, out, b, st)
			made = []string{m}
		}
		if err != nil {
			return nil, err
		}
		files = append(files, made...)
	}
	if err := writeSums(out, files); err != nil {
		return nil, err
	}
	var arts []artifact
	for _, f := range append(files, "SHA256SUMS") {
		fi, err := os.Stat(filepath.Join(out, f))
		if err != nil {
			return nil, err
		}
		arts = append(arts, artifact{rel: f, size: fi.Size()})
	}
	return arts, nil
}

type target struct{ os, arch string }

func parseTargets(s string) ([]target, error) {
	var ts []target
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		ok := false
		for _, a := range allTargets {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("-targets: %q is not built; choose from %s", f, strings.Join(allTargets, ", "))
		}
		goos, goarch, _ := strings.Cut(f, "/")
		ts = append(ts, target{goos, goarch})
	}
	if len(ts) == 0 {
		return nil, errors.New("-targets is empty; choose from " + strings.Join(allTargets, ", "))
	}
	return ts, nil
}

// repoRoot finds the posagent module's directory from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module posagent\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the posagent repository (no go.mod with `module posagent` above the working directory)")
		}
		dir = parent
	}
}

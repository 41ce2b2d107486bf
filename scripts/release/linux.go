package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager

	"posagent/agent/service"
)

const (
	nfpmConfig = "scripts/packaging/nfpm.yaml"
	// Where the packages put the binary and read the config.
	pkgBinary = "/usr/bin/posagent"
	pkgConfig = "/etc/posagent/posagent.yaml"
)

// linuxArtifacts writes the tarball, the .deb and the .rpm of one Linux
// build and returns their names in out.
func linuxArtifacts(root, out string, b built, st stamp) ([]string, error) {
	if err := os.WriteFile(filepath.Join(b.dir, "posagent.service"), service.UnitFile(pkgBinary, pkgConfig), 0o644); err != nil {
		return nil, err
	}
	tgz, err := tarball(root, out, b, st)
	if err != nil {
		return nil, err
	}
	names := []string{tgz}
	for _, format := range []string{"deb", "rpm"} {
		n, err := nfpmPackage(out, format, b, st)
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, nil
}

func nfpmPackage(out, format string, b built, st stamp) (string, error) {
	env := map[string]string{"VERSION": st.pkgVersion, "ARCH": b.arch, "BUILD": b.dir}
	cfg, err := nfpm.ParseFileWithEnvMapping(nfpmConfig, func(k string) string { return env[k] })
	if err != nil {
		return "", fmt.Errorf("%s: %w", nfpmConfig, err)
	}
	info, err := cfg.Get(format)
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", nfpmConfig, format, err)
	}
	info.MTime = st.mtime
	info.RPM.BuildHost = "posagent-release" // not the build machine's name: same input, same package
	if b.libc != "" {
		switch format {
		case "deb":
			info.Depends = append(info.Depends, "libc6 (>= "+b.libc+")")
		case "rpm":
			info.Depends = append(info.Depends, "glibc >= "+b.libc)
		}
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("%s package: %w", format, err)
	}
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	name := pkgr.ConventionalFileName(info)
	f, err := os.Create(filepath.Join(out, name))
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("%s package: %w", format, err)
	}
	return name, f.Close()
}

// tarball is posagent-VERSION-linux-ARCH.tar.gz: the binary and what
// `posagent service install` would put in place, for systems without dpkg
// or rpm.
func tarball(root, out string, b built, st stamp) (string, error) {
	base := fmt.Sprintf("posagent-%s-linux-%s", st.pkgVersion, b.arch)
	name := base + ".tar.gz"
	type entry struct {
		src  string
		mode int64
	}
	files := map[string]entry{
		"posagent":          {b.bin, 0o755},
		"posagent.service":  {filepath.Join(b.dir, "posagent.service"), 0o644},
		"posagent.sysusers": {filepath.Join(root, "scripts/systemd/posagent.sysusers"), 0o644},
		"99-posagent.rules": {filepath.Join(root, "scripts/udev/99-posagent.rules"), 0o644},
		"posagent.yaml":     {filepath.Join(root, "scripts/packaging/posagent.yaml"), 0o640},
		"README.md":         {filepath.Join(root, "README.md"), 0o644},
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, d := range docs {
		files["docs/"+filepath.Base(d)] = entry{d, 0o644}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	f, err := os.Create(filepath.Join(out, name))
	if err != nil {
		return "", err
	}
	defer f.Close()
	gz, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, n := range names {
		if d := filepath.Dir(n); d != "." && !dirs[d] {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: base + "/" + d + "/", Mode: 0o755, ModTime: st.mtime, Format: tar.FormatPAX}); err != nil {
				return "", err
			}
		}
		e := files[n]
		if err := addFile(tw, e.src, base+"/"+n, e.mode, st); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return name, f.Close()
}

func addFile(tw *tar.Writer, src, name string, mode int64, st stamp) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	// Root-owned, with the commit's time, so the tarball depends only on
	// the sources.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size(),
		ModTime: st.mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.Copy(tw, in)
	return err
}

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPackageVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.0":                   "1.2.0",
		"1.2.0":                    "1.2.0",
		"v1.2.0-rc.1":              "1.2.0~rc.1",
		"v1.2.0-3-gabc1234":        "1.2.0+3.gabc1234",
		"v1.2.0-3-gabc1234-dirty":  "1.2.0+3.gabc1234.dirty",
		"v1.2.0-dirty":             "1.2.0+dirty",
		"0d6a614":                  "0.0.0+g0d6a614",
		"0d6a614-dirty":            "0.0.0+g0d6a614.dirty",
		"v2.0.0-beta_1-2-g0123456": "2.0.0~beta.1+2.g0123456",
	} {
		got, err := packageVersion(in)
		if err != nil || got != want {
			t.Errorf("packageVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := packageVersion(" "); err == nil {
		t.Error("an empty version was accepted")
	}
}

func TestMSIVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.0": "1.2.0", "1.2": "1.2.0", "v3": "3.0.0", "v1.2.0-3-gabc1234-dirty": "1.2.0",
		"0d6a614": "0.0.0", "0d6a614-dirty": "0.0.0", "nightly": "0.0.0", "1.2.65535": "1.2.65535",
	} {
		got, err := msiVersion(in)
		if err != nil || got != want {
			t.Errorf("msiVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := msiVersion("256.0.0"); err == nil {
		t.Error("a major version above 255 was accepted for the MSI")
	}
}

func TestParseTargets(t *testing.T) {
	ts, err := parseTargets("linux/amd64, windows/amd64,linux/amd64")
	if err != nil || len(ts) != 2 || ts[1] != (target{"windows", "amd64"}) {
		t.Fatalf("got %v, %v", ts, err)
	}
	if _, err := parseTargets("darwin/arm64"); err == nil || !strings.Contains(err.Error(), "choose from") {
		t.Fatalf("an unknown target: %v", err)
	}
}

// needTools skips when a packaging tool is missing, except under CI
// (.ci/run installs them), where it fails.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("release packages not tested: %s not found (apt-get install wixl msitools rpm; .ci/run does)", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// releases builds version 1.0.0 (linux/amd64 and windows/amd64, the latter
// from a stub exe) and packages 1.0.1 (linux/amd64) once for every test here.
var releases = struct {
	once     sync.Once
	v1, v2   string
	err      error
	duration time.Duration
}{}

func buildReleases(t *testing.T) (v1, v2 string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the release artifacts")
	}
	needTools(t, "gcc", "wixl", "msibuild", "msiinfo", "dpkg-deb", "rpm")
	releases.once.Do(func() {
		dir, err := os.MkdirTemp("", "posagent-release-test-")
		if err != nil {
			releases.err = err
			return
		}
		releases.v1, releases.v2 = filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
		cwd, _ := os.Getwd()
		defer os.Chdir(cwd) // run works from the repository root
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		// The .msi's contents do not depend on the exe (TestMSIServiceUnderWine
		// installs a real one): a stub spares a Windows build here.
		stub := filepath.Join(dir, "stub.exe")
		if releases.err = os.WriteFile(stub, []byte("MZ stub"), 0o644); releases.err != nil {
			return
		}
		if _, releases.err = run(ctx, options{out: releases.v1, version: "1.0.0", targets: "linux/amd64,windows/amd64", windowsExe: stub}); releases.err != nil {
			return
		}
		// 1.0.1 packages 1.0.0's binary again (the packaging is what an
		// upgrade tests; a second build would only cost minutes).
		releases.err = repackage(filepath.Join(releases.v1, "posagent_1.0.0-1_amd64.deb"), releases.v2, "1.0.1")
		releases.duration = time.Since(start)
	})
	if releases.err != nil {
		t.Fatalf("release: %v", releases.err)
	}
	t.Logf("two releases built in %v", releases.duration.Round(time.Second))
	return releases.v1, releases.v2
}

// repackage builds the Linux packages of version from the binary in deb.
// The working directory is the repository root (run changed to it).
func repackage(deb, out, version string) error {
	dir, err := os.MkdirTemp("", "posagent-repackage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	x := filepath.Join(dir, "x")
	if out, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x: %v: %s", err, out)
	}
	// nfpm.yaml takes the binary from ${BUILD}/posagent.
	b, err := prebuilt(filepath.Join(x, "usr/bin/posagent"), dir, target{"linux", "amd64"})
	if err != nil {
		return err
	}
	b.bin = filepath.Join(dir, "posagent")
	if err := os.Rename(filepath.Join(dir, "posagent.exe"), b.bin); err != nil {
		return err
	}
	if b.libc, err = minGlibc(b.bin); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	_, err = linuxArtifacts(root, out, b, stamp{version: version, pkgVersion: version, mtime: time.Now().UTC()})
	return err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if releases.v1 != "" {
		os.RemoveAll(filepath.Dir(releases.v1))
	}
	os.Exit(code)
}

func cmdOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func wantAll(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestReleaseArtifacts(t *testing.T) {
	v1, _ := buildReleases(t)
	deb := filepath.Join(v1, "posagent_1.0.0-1_amd64.deb")
	rpm := filepath.Join(v1, "posagent-1.0.0-1.x86_64.rpm")
	tgz := filepath.Join(v1, "posagent-1.0.0-linux-amd64.tar.gz")
	msi := filepath.Join(v1, "posagent-1.0.0-windows-amd64.msi")

	// SHA256SUMS covers every artifact and sha256sum agrees with it.
	sums, err := os.ReadFile(filepath.Join(v1, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{deb, rpm, tgz, msi} {
		if !bytes.Contains(sums, []byte("  "+filepath.Base(p)+"\n")) {
			t.Errorf("SHA256SUMS lacks %s:\n%s", filepath.Base(p), sums)
		}
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = v1
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}

	paths := []string{"/usr/bin/posagent", "/usr/lib/systemd/system/posagent.service",
		"/usr/lib/sysusers.d/posagent.conf", "/usr/lib/udev/rules.d/99-posagent.rules",
		"/etc/posagent/posagent.yaml", "/usr/share/doc/posagent/README.md", "/usr/share/doc/posagent/docs/service.md"}

	t.Run("deb", func(t *testing.T) {
		list := cmdOut(t, "dpkg-deb", "-c", deb)
		for _, p := range paths {
			wantAll(t, "dpkg-deb -c", list, "."+p+"\n")
		}
		wantAll(t, "dpkg-deb -c", list, "-rwxr-xr-x root/root", "-rw-r----- root/root") // binary, config
		fields := cmdOut(t, "dpkg-deb", "-f", deb)
		wantAll(t, "control", fields, "Version: 1.0.0-1", "Architecture: amd64", "Recommends: fonts-noto-cjk", "Depends: libc6 (>= 2.")
		ctl := t.TempDir()
		cmdOut(t, "dpkg-deb", "-e", deb, ctl)
		conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
		if strings.TrimSpace(string(conffiles)) != "/etc/posagent/posagent.yaml" {
			t.Errorf("conffiles: %q", conffiles)
		}
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			if fi, err := os.Stat(filepath.Join(ctl, s)); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("maintainer script %s: %v", s, err)
			}
		}
		// The packaged unit runs the packaged binary with the packaged config.
		root := t.TempDir()
		cmdOut(t, "dpkg-deb", "-x", deb, root)
		unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/posagent.service"))
		if err != nil {
			t.Fatal(err)
		}
		wantAll(t, "the packaged unit", string(unit), "\nExecStart=/usr/bin/posagent run --config /etc/posagent/posagent.yaml\n")
		out := cmdOut(t, filepath.Join(root, "usr/bin/posagent"), "version")
		wantAll(t, "posagent version", out, "posagent 1.0.0\n", "platform: linux/amd64")
	})

	t.Run("rpm", func(t *testing.T) {
		list := cmdOut(t, "rpm", "-qlp", rpm)
		for _, p := range paths {
			wantAll(t, "rpm -qlp", list, p+"\n")
		}
		wantAll(t, "rpm --configfiles", cmdOut(t, "rpm", "-qp", "--configfiles", rpm), "/etc/posagent/posagent.yaml")
		wantAll(t, "rpm --recommends", cmdOut(t, "rpm", "-qp", "--recommends", rpm), "google-noto-sans-cjk-fonts")
		wantAll(t, "rpm --requires", cmdOut(t, "rpm", "-qp", "--requires", rpm), "glibc >= 2.")
		wantAll(t, "rpm --scripts", cmdOut(t, "rpm", "-qp", "--scripts", rpm),
			"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "systemd-sysusers")
		// %config(noreplace): rpm -qp --queryformat shows the flags.
		flags := cmdOut(t, "rpm", "-qp", "--queryformat", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm)
		wantAll(t, "rpm file flags", flags, "/etc/posagent/posagent.yaml cn")
	})

	t.Run("tarball", func(t *testing.T) {
		f, err := os.Open(tgz)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		got := map[string]int64{}
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[h.Name] = h.Mode
		}
		base := "posagent-1.0.0-linux-amd64/"
		for name, mode := range map[string]int64{"posagent": 0o755, "posagent.service": 0o644, "posagent.sysusers": 0o644,
			"99-posagent.rules": 0o644, "posagent.yaml": 0o640, "README.md": 0o644, "docs/service.md": 0o644} {
			if m, ok := got[base+name]; !ok || m != mode {
				t.Errorf("tarball entry %s: present %v mode %o, want %o", name, ok, m, mode)
			}
		}
	})

	t.Run("msi", func(t *testing.T) {
		tables := cmdOut(t, "msiinfo", "tables", msi)
		wantAll(t, "msiinfo tables", tables, "ServiceInstall", "ServiceControl", "File", "Registry", "CreateFolder", "Upgrade")
		exp := func(table string) string { return cmdOut(t, "msiinfo", "export", msi, table) }
		wantAll(t, "File", exp("File"), "posagent.exe", "posagent.yaml", "README.md")
		wantAll(t, "Directory", exp("Directory"), "ProgramFiles64Folder", "CommonAppDataFolder", "INSTALLDIR\tProgramFiles64Folder\tposagent")
		// Own process (16), automatic start (2), LocalSystem, the config in ProgramData.
		wantAll(t, "ServiceInstall", exp("ServiceInstall"), "\tposagent\tposagent till agent\t16\t2\t1\t", "LocalSystem",
			`run --config "[CommonAppDataFolder]posagent\posagent.yaml"`)
		// Stop on install and uninstall, delete on uninstall (2+32+128), never started by the install.
		wantAll(t, "ServiceControl", exp("ServiceControl"), "\tposagent\t162\t")
		// 64-bit + Permanent + NeverOverwrite: uninstall keeps ProgramData\posagent.
		wantAll(t, "Component", exp("Component"), "DataDir\t{C4B8E1F2-5D3A-4A9C-8E7B-0F6D2A1C3B59}\tDATADIR\t400\t")
		wantAll(t, "Registry", exp("Registry"), `SYSTEM\CurrentControlSet\Services\EventLog\Application\posagent`, "EventCreate.exe")
		wantAll(t, "Upgrade", exp("Upgrade"), "\t1.0.0\t\t513\t\tWIX_UPGRADE_DETECTED")
		wantAll(t, "Property", exp("Property"), "ProductVersion\t1.0.0", "ProductName\tposagent")
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze not installed")
		}
		root := t.TempDir()
		cmdOut(t, "dpkg-deb", "-x", deb, root)
		// verify resolves ExecStart= on the host: point it at the unpacked binary.
		unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/posagent.service"))
		if err != nil {
			t.Fatal(err)
		}
		unit = bytes.Replace(unit, []byte("ExecStart=/usr/bin/posagent"), []byte("ExecStart="+filepath.Join(root, "usr/bin/posagent")), 1)
		p := filepath.Join(t.TempDir(), "posagent.service")
		if err := os.WriteFile(p, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("udevadm", func(t *testing.T) {
		out, err := exec.Command("udevadm", "verify", "--help").CombinedOutput()
		if err != nil {
			// udevadm verify came with systemd 253; Debian 12 has 252.
			t.Skipf("udevadm verify not available here: %v %s", err, bytes.TrimSpace(out))
		}
		root := t.TempDir()
		cmdOut(t, "dpkg-deb", "-x", deb, root)
		cmdOut(t, "udevadm", "verify", filepath.Join(root, "usr/lib/udev/rules.d/99-posagent.rules"))
	})
}

// TestDebInstallUpgradeRemove installs the .deb on this machine (as root),
// upgrades it and removes it: the config as edited and the ledger directory
// survive both, and the maintainer scripts work without a running systemd
// (containers and CI).
func TestDebInstallUpgradeRemove(t *testing.T) {
	v1, v2 := buildReleases(t)
	needTools(t, "dpkg")
	if os.Geteuid() != 0 {
		msg := "dpkg -i needs root"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Never touch a real installation.
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "posagent").CombinedOutput(); err == nil && len(out) > 0 &&
		!strings.Contains(string(out), "not-installed") {
		t.Skipf("the posagent package is already on this machine (%s); not testing over it", out)
	}
	for _, p := range []string{"/var/lib/posagent", "/etc/posagent", "/usr/bin/posagent"} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists: a posagent is installed here; not testing over it", p)
		}
	}
	_, userErr := user.Lookup("posagent")
	hadUser := userErr == nil
	t.Cleanup(func() {
		out, err := exec.Command("dpkg", "--purge", "posagent").CombinedOutput()
		if err != nil {
			t.Logf("dpkg --purge posagent: %v\n%s", err, out)
		}
		os.RemoveAll("/var/lib/posagent")
		os.RemoveAll("/etc/posagent")
		if !hadUser {
			_ = exec.Command("userdel", "posagent").Run()
			_ = exec.Command("groupdel", "posagent").Run()
		}
	})

	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := dpkg("-i", filepath.Join(v1, "posagent_1.0.0-1_amd64.deb"))
	t.Logf("dpkg -i 1.0.0:\n%s", out)
	wantAll(t, "posagent version", cmdOut(t, "/usr/bin/posagent", "version"), "posagent 1.0.0\n")
	u, err := user.Lookup("posagent")
	if err != nil {
		t.Fatalf("postinst created no posagent user: %v", err)
	}
	g, err := user.LookupGroup("posagent")
	if err != nil {
		t.Fatalf("postinst created no posagent group: %v", err)
	}
	st := cmdOut(t, "stat", "-c", "%U:%G %a", "/var/lib/posagent", "/etc/posagent/posagent.yaml")
	if want := "posagent:posagent 750\nroot:posagent 640\n"; st != want {
		t.Errorf("ownership after install:\n%s\nwant\n%s", st, want)
	}
	t.Logf("user %s uid %s, group gid %s", u.Username, u.Uid, g.Gid)
	if _, err := exec.LookPath("systemctl"); err == nil {
		// Enabled offline (no systemd runs here), not started.
		if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/posagent.service"); err != nil {
			t.Errorf("the unit is not enabled: %v", err)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/posagent.service").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
	}
	// The package's config passes the agent's own check.
	cmdOut(t, "/usr/bin/posagent", "config", "validate", "--config", "/etc/posagent/posagent.yaml")

	// The operator edits the config; the agent has written its ledger and token.
	cfg := "/etc/posagent/posagent.yaml"
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(orig, []byte("store: local "), []byte("store: s042 "), 1)
	if bytes.Equal(edited, orig) {
		t.Fatal("the packaged config has no `store: local` line to edit")
	}
	if err := os.WriteFile(cfg, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	ledger := map[string]string{"ledger.db": "ledger bytes", "api.token": "secret-token\n"}
	for n, data := range ledger {
		if err := os.WriteFile(filepath.Join("/var/lib/posagent", n), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := func(when string) {
		t.Helper()
		for n, data := range ledger {
			if b, err := os.ReadFile(filepath.Join("/var/lib/posagent", n)); err != nil || string(b) != data {
				t.Errorf("%s: /var/lib/posagent/%s is %q, %v", when, n, b, err)
			}
		}
		if b, err := os.ReadFile(cfg); err != nil || !bytes.Equal(b, edited) {
			t.Errorf("%s: the edited config is %q, %v", when, b, err)
		}
	}

	out = dpkg("-i", filepath.Join(v2, "posagent_1.0.1-1_amd64.deb"))
	t.Logf("dpkg -i 1.0.1:\n%s", out)
	if v := cmdOut(t, "dpkg-query", "-W", "-f", "${Version}", "posagent"); v != "1.0.1-1" {
		t.Errorf("installed version after the upgrade: %q, want 1.0.1-1", v)
	}
	keep("after the upgrade")
	if st := cmdOut(t, "stat", "-c", "%U:%G %a", "/var/lib/posagent"); st != "posagent:posagent 750\n" {
		t.Errorf("the upgrade changed the ledger directory: %s", st)
	}

	out = dpkg("-r", "posagent")
	t.Logf("dpkg -r:\n%s", out)
	keep("after dpkg -r")
	for _, p := range []string{"/usr/bin/posagent", "/usr/lib/systemd/system/posagent.service", "/usr/lib/udev/rules.d/99-posagent.rules"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after dpkg -r (%v)", p, err)
		}
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/posagent.service"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unit is still enabled after dpkg -r (%v)", err)
	}

	// A purge removes the config (dpkg's conffile) but still not the ledger.
	dpkg("--purge", "posagent")
	for n := range ledger {
		if _, err := os.Stat(filepath.Join("/var/lib/posagent", n)); err != nil {
			t.Errorf("dpkg --purge removed the ledger's %s: %v", n, err)
		}
	}
}

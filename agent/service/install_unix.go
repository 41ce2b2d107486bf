//go:build !windows

package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"posagent/scripts"
)

// Where the files go, relative to Options.Root.
const (
	binPath      = "/usr/local/bin/posagent"
	unitDir      = "/etc/systemd/system"
	udevDir      = "/etc/udev/rules.d"
	sysusersPath = "/usr/lib/sysusers.d/posagent.conf"
	// DefaultConfigPath is the config file the unit passes to `posagent run`.
	DefaultConfigPath = "/etc/posagent/posagent.yaml"
)

// Paths lists the files Install writes, relative to the root.
func Paths() []string {
	p := []string{binPath, filepath.Join(unitDir, scripts.UnitName), sysusersPath}
	for _, f := range scripts.UdevRules() {
		p = append(p, filepath.Join(udevDir, f.Name))
	}
	return p
}

// Install puts the binary, the systemd unit, the sysusers entry, the udev
// rules and (when missing) a config file in place, then creates the service
// account, reloads udev and systemd and enables the unit. With Root set, or
// when systemctl is absent, only the files are written.
func Install(ctx context.Context, o Options) error {
	if o.Root == "" && os.Geteuid() != 0 {
		return errors.New("installing the service writes to /etc and /usr/local: run it as root (sudo posagent service install), or pass --root DIR to stage the files")
	}
	root := o.Root
	if root == "" {
		root = "/"
	}
	src, err := o.binary()
	if err != nil {
		return err
	}
	cfg := o.Config
	if cfg == "" {
		cfg = DefaultConfigPath
	}
	if !filepath.IsAbs(cfg) {
		return fmt.Errorf("--config %q: the service needs an absolute path", cfg)
	}

	dst := filepath.Join(root, binPath)
	if err := copyBinary(src, dst); err != nil {
		return err
	}
	o.say("installed %s", dst)

	unit := unitFor(scripts.SystemdUnit(), binPath, cfg)
	if err := writeFile(filepath.Join(root, unitDir, scripts.UnitName), unit, 0o644); err != nil {
		return err
	}
	o.say("installed %s", filepath.Join(root, unitDir, scripts.UnitName))
	if err := writeFile(filepath.Join(root, sysusersPath), scripts.Sysusers(), 0o644); err != nil {
		return err
	}
	rules := scripts.UdevRules()
	for _, f := range rules {
		p := filepath.Join(root, udevDir, f.Name)
		if err := writeFile(p, f.Data, 0o644); err != nil {
			return err
		}
		o.say("installed %s", p)
	}
	if o.ReaderRules.Name != "" {
		p := filepath.Join(root, udevDir, filepath.Base(o.ReaderRules.Name))
		if err := writeFile(p, o.ReaderRules.Data, 0o644); err != nil {
			return err
		}
		o.say("installed %s (the configured readers)", p)
	}
	if len(rules) == 0 && o.ReaderRules.Name == "" {
		o.say("note: this build carries no udev rules; HID readers need their own permissions")
	}
	cfgPath := filepath.Join(root, cfg)
	wroteConfig := false
	if o.ConfigFile != "" {
		wrote, err := installConfig(o, o.ConfigFile, cfgPath)
		if err != nil {
			return err
		}
		wroteConfig = wrote
	} else if len(o.DefaultConfig) > 0 {
		if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
			// The config holds the API token and HQ credentials: root may
			// write it, the service's group may read it, nobody else.
			if err := writeFile(cfgPath, o.DefaultConfig, 0o640); err != nil {
				return err
			}
			wroteConfig = true
			o.say("wrote a default config to %s; edit it, then start the service", cfgPath)
		} else if err != nil {
			return fmt.Errorf("check %s: %w", cfgPath, err)
		} else {
			o.say("kept the existing config %s", cfgPath)
		}
	}

	if o.Root != "" {
		o.say("--root is set: skipped creating the posagent user and running udevadm and systemctl")
		return nil
	}
	if _, err := o.look("systemctl"); err != nil {
		o.say("systemctl not found: files are in place, but enable the service with your init system yourself")
		return nil
	}
	if err := o.activate(ctx, cfgPath, wroteConfig); err != nil {
		return err
	}
	o.say("installed and enabled %s; start it with `posagent service start`", scripts.UnitName)
	return nil
}

// activate creates the account, reloads udev and systemd and enables the unit.
func (o *Options) activate(ctx context.Context, cfgPath string, wroteConfig bool) error {
	if _, err := o.look("systemd-sysusers"); err == nil {
		if out, err := o.run(ctx, "systemd-sysusers", sysusersPath); err != nil {
			return fmt.Errorf("create the posagent user with systemd-sysusers: %v: %s", err, bytes.TrimSpace(out))
		}
	} else if _, lerr := user.Lookup("posagent"); lerr != nil {
		if out, err := o.run(ctx, "useradd", "--system", "--user-group", "--home-dir", "/var/lib/posagent",
			"--no-create-home", "--shell", "/usr/sbin/nologin", "posagent"); err != nil {
			return fmt.Errorf("create the posagent user with useradd: %v: %s", err, bytes.TrimSpace(out))
		}
	}
	if wroteConfig {
		if g, err := user.LookupGroup("posagent"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				if err := os.Chown(cfgPath, 0, gid); err != nil {
					return fmt.Errorf("let the posagent group read %s: %w", cfgPath, err)
				}
			}
		}
	}
	if _, err := o.look("udevadm"); err == nil && (len(scripts.UdevRules()) > 0 || o.ReaderRules.Name != "") {
		for _, args := range [][]string{{"control", "--reload-rules"}, {"trigger", "--action=add", "--subsystem-match=tty", "--subsystem-match=hidraw", "--subsystem-match=usb", "--subsystem-match=input"}} {
			if out, err := o.run(ctx, "udevadm", args...); err != nil {
				// Rules still apply at the next plug-in or boot.
				o.say("udevadm %s failed (%v): %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
			}
		}
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", scripts.UnitName}} {
		if out, err := o.run(ctx, "systemctl", args...); err != nil {
			return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Uninstall stops and disables the unit and removes the files Install wrote,
// except the config, the ledger in /var/lib/posagent and the binary.
func Uninstall(ctx context.Context, o Options) error {
	if o.Root == "" && os.Geteuid() != 0 {
		return errors.New("uninstalling the service removes files in /etc: run it as root (sudo posagent service uninstall)")
	}
	root := o.Root
	if root == "" {
		root = "/"
	}
	if o.Root == "" {
		if _, err := o.look("systemctl"); err == nil {
			if out, err := o.run(ctx, "systemctl", "disable", "--now", scripts.UnitName); err != nil {
				o.say("systemctl disable --now %s: %v: %s", scripts.UnitName, err, bytes.TrimSpace(out))
			}
		}
	}
	var removed int
	for _, p := range append(Paths()[1:], installedRules(root)...) {
		full := filepath.Join(root, p)
		err := os.Remove(full)
		switch {
		case err == nil:
			removed++
			o.say("removed %s", full)
		case errors.Is(err, os.ErrNotExist):
		default:
			return fmt.Errorf("remove %s: %w", full, err)
		}
	}
	if o.Root == "" {
		if _, err := o.look("systemctl"); err == nil {
			if out, err := o.run(ctx, "systemctl", "daemon-reload"); err != nil {
				o.say("systemctl daemon-reload: %v: %s", err, bytes.TrimSpace(out))
			}
		}
	}
	if removed == 0 {
		o.say("nothing to remove: the service was not installed")
	}
	o.say("kept the ledger (/var/lib/posagent), the config (/etc/posagent) and %s", binPath)
	return nil
}

// installedRules finds rules a previous version installed under names this
// build no longer carries.
func installedRules(root string) []string {
	m, _ := filepath.Glob(filepath.Join(root, udevDir, "*posagent*.rules"))
	out := make([]string, 0, len(m))
	for _, p := range m {
		out = append(out, filepath.Join(udevDir, filepath.Base(p)))
	}
	return out
}

// Start starts the installed unit.
func Start(ctx context.Context, o Options) error { return o.systemctl(ctx, "start") }

// Stop stops the unit; in-flight commits finish first.
func Stop(ctx context.Context, o Options) error { return o.systemctl(ctx, "stop") }

// Status returns systemctl's description of the unit. An installed but
// stopped unit is not an error.
func Status(ctx context.Context, o Options) (string, error) {
	if err := o.needSystemd(); err != nil {
		return "", err
	}
	out, err := o.run(ctx, "systemctl", "status", "--no-pager", "--lines=10", scripts.UnitName)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case 3: // unit not active
			return string(out), nil
		case 4: // no such unit
			return "", ErrNotInstalled
		}
	}
	if err != nil {
		return "", fmt.Errorf("systemctl status: %v: %s", err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (o *Options) systemctl(ctx context.Context, verb string) error {
	if err := o.needSystemd(); err != nil {
		return err
	}
	out, err := o.run(ctx, "systemctl", verb, scripts.UnitName)
	if err != nil {
		msg := string(bytes.TrimSpace(out))
		if strings.Contains(msg, "not found") || strings.Contains(msg, "not loaded") {
			return ErrNotInstalled
		}
		return fmt.Errorf("systemctl %s %s: %v: %s (see `journalctl -u %s`)", verb, scripts.UnitName, err, msg, Name)
	}
	o.say("%s: %s", scripts.UnitName, map[string]string{"start": "started", "stop": "stopped"}[verb])
	return nil
}

func (o *Options) needSystemd() error {
	if o.Root != "" {
		return errors.New("--root only applies to install and uninstall")
	}
	if _, err := o.look("systemctl"); err != nil {
		return errors.New("systemctl not found: this system does not run systemd; run `posagent run` under your init system instead")
	}
	return nil
}

// copyBinary installs src at dst atomically, unless they are the same file.
func copyBinary(src, dst string) error {
	if a, err := os.Stat(src); err != nil {
		return fmt.Errorf("binary to install: %w", err)
	} else if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read binary to install: %w", err)
	}
	return writeFile(dst, data, 0o755)
}

// writeFile writes through a temporary file and a rename, so a crash never
// leaves a half-written unit or binary (a running binary is replaced, not
// overwritten).
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// installConfig copies the operator's config file src to dst. An identical
// dst is left alone; a different one is kept beside it as dst.previous-TIME
// and the operator is told, so no edited config silently disappears.
func installConfig(o Options, src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("--config: read the config to install: %w", err)
	}
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			o.say("the service uses %s", dst)
			return false, nil
		}
	}
	old, err := os.ReadFile(dst)
	switch {
	case err == nil && bytes.Equal(old, data):
		o.say("kept %s: it already matches %s", dst, src)
		return false, nil
	case err == nil:
		bak := dst + ".previous-" + time.Now().UTC().Format("20060102T150405Z")
		if err := writeFile(bak, old, 0o600); err != nil {
			return false, err
		}
		o.say("replaced the existing, different config %s; the previous one is saved as %s", dst, bak)
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("check %s: %w", dst, err)
	}
	// The config holds the API token and HQ credentials: root may write
	// it, the service's group may read it, nobody else.
	if err := writeFile(dst, data, 0o640); err != nil {
		return false, err
	}
	o.say("installed %s as %s", src, dst)
	return true, nil
}

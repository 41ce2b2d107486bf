// Package service runs posagent as an operating-system service and installs it:
// a systemd unit (with udev rules and a sysusers entry) on Linux, a Service
// Control Manager service with recovery actions and an event-log source on
// Windows. It knows nothing of the agent itself: the caller hands Run a
// function that runs until its context ends and reports readiness.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"posagent/scripts"
)

// Name is the service name on every OS.
const Name = "posagent"

// Runner runs the agent until ctx ends. It calls ready once the agent serves
// requests (ledger open, API listening); status is a short human sentence.
type Runner func(ctx context.Context, ready func(status string)) error

// Options say where and how to install. The zero value installs the running
// executable system-wide with the default config path.
type Options struct {
	// Root installs into this directory instead of / (packaging and tests).
	// With Root set nothing is registered with the service manager.
	Root string
	// Binary is the executable to install; empty means the running one.
	Binary string
	// Config is the config path the service passes to `posagent run`;
	// empty means the OS default.
	Config string
	// ConfigFile, when set, is the operator's config file: Install copies
	// it to Config (default the system location) instead of writing
	// DefaultConfig. A different file already there is kept beside it.
	ConfigFile string
	// ReaderRules, when its Name is set, are udev rules generated from the
	// configured readers (`posagent devices udev`), installed beside the
	// fixed rules (Linux).
	ReaderRules scripts.File
	// DefaultConfig is written to Config when no file is there yet.
	DefaultConfig []byte
	// Out receives progress messages; nil discards them.
	Out io.Writer

	// exec and lookPath are replaced in tests.
	exec     func(ctx context.Context, name string, args ...string) ([]byte, error)
	lookPath func(string) (string, error)
}

// ErrNotInstalled is returned by start, stop and status when the service is
// not installed.
var ErrNotInstalled = errors.New("the posagent service is not installed; run `posagent service install` first")

func (o *Options) out() io.Writer {
	if o.Out == nil {
		return io.Discard
	}
	return o.Out
}

func (o *Options) say(format string, args ...any) { fmt.Fprintf(o.out(), format+"\n", args...) }

func (o *Options) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if o.exec != nil {
		return o.exec(ctx, name, args...)
	}
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

func (o *Options) look(name string) (string, error) {
	if o.lookPath != nil {
		return o.lookPath(name)
	}
	return exec.LookPath(name)
}

func (o *Options) binary() (string, error) {
	if o.Binary != "" {
		return o.Binary, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the running executable to install (pass --binary): %w", err)
	}
	return exe, nil
}

// discardLogger is used when a caller passes no logger.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}

// UnitFile returns the embedded systemd unit with ExecStart running bin with
// the config file cfg: what install writes, and what the packages ship
// (scripts/release).
func UnitFile(bin, cfg string) []byte { return unitFor(scripts.SystemdUnit(), bin, cfg) }

// unitFor points the embedded unit's ExecStart at the installed binary and config.
func unitFor(unit []byte, bin, cfg string) []byte {
	lines := strings.Split(string(unit), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "ExecStart=") {
			lines[i] = "ExecStart=" + bin + " run --config " + cfg
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

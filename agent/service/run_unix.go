//go:build !windows

package service

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// IsService reports whether the process was started by systemd (which sets
// INVOCATION_ID for every unit and JOURNAL_STREAM when stdout/stderr go to
// the journal).
func IsService() bool {
	return os.Getenv("INVOCATION_ID") != "" || os.Getenv("JOURNAL_STREAM") != ""
}

// NewLogger returns the process logger: JSON lines under a service manager
// (the journal keeps the fields), text on a terminal. The returned func
// releases what the logger holds.
func NewLogger(w io.Writer, level slog.Leveler) (*slog.Logger, func()) {
	opts := &slog.HandlerOptions{Level: level}
	if IsService() {
		return slog.New(slog.NewJSONHandler(w, opts)), func() {}
	}
	return slog.New(slog.NewTextHandler(w, opts)), func() {}
}

// Run runs r until SIGTERM or SIGINT (or ctx ends), tells systemd when r is
// ready and when it is stopping, and returns r's error.
func Run(ctx context.Context, log *slog.Logger, r Runner) error {
	log = orDiscard(log)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		if err := Notify("STOPPING=1"); err != nil {
			log.Warn("systemd stop notification failed", "err", err)
		}
	}()
	err := r(ctx, func(status string) {
		if err := Notify("READY=1\nSTATUS=" + status); err != nil {
			log.Warn("systemd readiness notification failed", "err", err)
		}
	})
	stop()
	<-stopped
	return err
}

package devices_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"posagent/devices"
	"posagent/devices/internal/devtest"
)

var testKey = []byte("0123456789abcdef-test-key")

// run starts a manager and stops it (waiting for Run) at test end.
func run(t testing.TB, cfgs []devices.Config, opts ...devices.Option) *devices.Manager {
	t.Helper()
	opts = append([]devices.Option{devices.WithBackoff(5*time.Millisecond, 100*time.Millisecond)}, opts...)
	m, err := devices.NewManager(cfgs, testKey, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(devtest.Wait):
			t.Errorf("Run did not return after cancel")
		}
		// Events is closed when Run returns: every goroutine has ended.
		for range m.Events() {
		}
	})
	return m
}

// next waits for the next event matching pred, failing on timeout. Events
// not matching are returned in skipped for callers that care.
func next(t testing.TB, m *devices.Manager, pred func(devices.Event) bool) (devices.Event, []devices.Event) {
	t.Helper()
	var skipped []devices.Event
	deadline := time.After(devtest.Wait)
	for {
		select {
		case e, ok := <-m.Events():
			if !ok {
				t.Fatalf("events closed while waiting")
			}
			if pred(e) {
				return e, skipped
			}
			skipped = append(skipped, e)
		case <-deadline:
			t.Fatalf("timed out waiting for event; saw %s", describe(skipped))
		}
	}
}

func describe(es []devices.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "[%s %s", e.Device, e.Kind)
		switch {
		case e.Status != nil:
			fmt.Fprintf(&b, " %s %s", e.Status.State, e.Status.Detail)
		case e.Error != nil:
			fmt.Fprintf(&b, " %s %s", e.Error.Code, e.Error.Message)
		case e.Data != nil:
			fmt.Fprintf(&b, " %s %s", e.Data.Kind, e.Data.Masked)
		}
		b.WriteString("] ")
	}
	return b.String()
}

func online(e devices.Event) bool  { return e.Status != nil && e.Status.Online }
func offline(e devices.Event) bool { return e.Status != nil && e.Status.State == devices.StateOffline }
func isData(e devices.Event) bool  { return e.Kind == devices.KindData }
func isError(e devices.Event) bool { return e.Kind == devices.KindError }

const (
	pan      = "6222021234567890123" // 19 digits
	msrSwipe = "%B6222021234567890123^ZHANG/SAN^2512101000000?;6222021234567890123=25121010000000?\r"
)

package devices

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"posagent/devices/hiddev"
	"posagent/devices/internal/devtest"
	"posagent/devices/token"
)

// TestHIDNotCompiled: a build without HID says so in the log and with a
// status event, instead of silently reading nothing.
func TestHIDNotCompiled(t *testing.T) {
	var logs devtest.Buffer
	m, err := NewManager([]Config{{Name: "scanner", Till: "T1", Transport: "hid", VID: "0c2e", PID: "0b61", HIDReport: "pos"}},
		[]byte("0123456789abcdef"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m.opts.hid, m.opts.hidErr = nil, hiddev.ErrNotCompiled
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case e := <-m.Events():
		if e.Status == nil || e.Status.State != StateUnsupported || !strings.Contains(e.Status.Detail, "HID support not compiled in") {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no status event")
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "HID support not compiled in") {
		t.Errorf("log does not say HID is missing: %s", logs.String())
	}
}

func TestConfigErrors(t *testing.T) {
	key := []byte("0123456789abcdef")
	cases := map[string]Config{
		"set path, or vid and pid": {Decoder: "msr"},
		"set decoder":              {Path: "/dev/ttyS0"},
		"parity":                   {Path: "/dev/ttyS0", Decoder: "msr", Parity: "weird"},
		"flow_control xonxoff":     {Path: "/dev/ttyS0", Decoder: "msr", FlowControl: "xonxoff"},
		"hid_report":               {Transport: "hid", VID: "1", PID: "2"},
		"unknown keyboard layout":  {Transport: "evdev", Path: "/dev/input/event3", Decoder: "barcode", Layout: "xx"},
		"not a 16-bit hex":         {VID: "zz", PID: "1", Decoder: "msr"},
		"transport":                {Transport: "bluetooth", Path: "x", Decoder: "msr"},
	}
	for want, c := range cases {
		if _, err := NewManager([]Config{c}, key, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want error mentioning %q", c, err, want)
		}
	}
	if _, err := NewManager(nil, []byte("short"), nil); err == nil {
		t.Error("short key accepted")
	}
	ok := Config{Path: "/dev/ttyS0", Decoder: "msr"}
	if _, err := NewManager([]Config{ok, ok}, key, nil); err == nil {
		t.Error("duplicate names accepted")
	}
}

func TestBackoffBounded(t *testing.T) {
	o := options{minBackoff: 10 * time.Millisecond, maxBackoff: 80 * time.Millisecond}
	for attempt := range 100 {
		for range 20 {
			d := o.backoff(attempt)
			limit := min(o.maxBackoff, o.minBackoff<<min(attempt, 29)) + time.Millisecond
			if d <= 0 || d > limit {
				t.Fatalf("attempt %d: %v outside (0, %v]", attempt, d, limit)
			}
		}
	}
}

// TestWarns8H10DMeaning: a device whose tokens changed when 8h10d took the
// reader-manual meaning is named in a start-up warning; one whose tokens
// did not change is not.
func TestWarns8H10DMeaning(t *testing.T) {
	uid := func(f string) token.Rule { return token.Rule{Source: token.SourceUID, UIDFormat: f} }
	for _, tc := range []struct {
		decoder string
		rule    token.Rule
		warn    bool
	}{
		{"em4100", uid("8h10d"), true},
		{"pn532", uid("8H10D"), true},
		{"uid:dec10", uid("8h10d"), true},
		{"uid:8h10d", token.Rule{}, false},
		{"uid:8h10d", uid("hex"), true},
		{"uid:8h10d", uid("dec10"), true},
		{"uid:8h10d", uid("8h10d_rev"), false},
		{"em4100", uid("8h10d_rev"), false},
		{"em4100", uid("dec10"), false},
		{"uid:dec10", token.Rule{}, false},
		{"uid:8h10d_rev", token.Rule{}, false},
	} {
		var logs devtest.Buffer
		_, err := NewManager([]Config{{Name: "rfid", Till: "T1", Path: "/dev/null", Decoder: tc.decoder, Rule: tc.rule}},
			[]byte("0123456789abcdef"), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "8h10d_rev in its place"); got != tc.warn {
			t.Errorf("decoder %s rule %+v: warned %v, want %v: %s", tc.decoder, tc.rule, got, tc.warn, logs.String())
		}
	}
}

package devicescli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"posagent/devices"
)

func TestUdevRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     devices.Config
		want    []string // lines that must appear
		wantErr string
	}{
		{name: "serial by vid:pid and serial", cfg: devices.Config{Name: "rfid1", VID: "0x1A86", PID: "7523", Serial: "X9"},
			want: []string{`SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", ATTRS{serial}=="X9", GROUP="posagent", MODE="0660", ENV{ID_MM_DEVICE_IGNORE}="1"`}},
		{name: "fixed serial port", cfg: devices.Config{Name: "msr", Path: "/dev/ttyS0"},
			want: []string{`SUBSYSTEM=="tty", KERNEL=="ttyS0", GROUP="posagent", MODE="0660", ENV{ID_MM_DEVICE_IGNORE}="1"`}},
		{name: "hid gets usb and hidraw", cfg: devices.Config{Name: "scan", Transport: "hid", VID: "c2e", PID: "0B61"},
			want: []string{`SUBSYSTEM=="usb", ATTRS{idVendor}=="0c2e", ATTRS{idProduct}=="0b61", GROUP="posagent", MODE="0660"`,
				`SUBSYSTEM=="hidraw", ATTRS{idVendor}=="0c2e", ATTRS{idProduct}=="0b61", GROUP="posagent", MODE="0660"`}},
		{name: "wedge with serial", cfg: devices.Config{Name: "wedge", Transport: "evdev", VID: "ffff", PID: "0035", Serial: "W1"},
			want: []string{`SUBSYSTEM=="input", KERNEL=="event*", ATTRS{idVendor}=="ffff", ATTRS{idProduct}=="0035", ATTRS{serial}=="W1", GROUP="posagent", MODE="0660"`}},
		{name: "wedge without serial warns", cfg: devices.Config{Name: "wedge", Transport: "evdev", VID: "ffff", PID: "0035"},
			want: []string{"# no serial given: every keyboard with this VID:PID matches"}},
		{name: "wedge by event number gets no rule", cfg: devices.Config{Name: "kbd", Transport: "evdev", Path: "/dev/input/event3"},
			want: []string{"# kbd (evdev /dev/input/event3): no rule"}},
		{name: "serial by-id link gets no rule", cfg: devices.Config{Name: "s", Path: "/dev/serial/by-id/usb-FTDI-if00"},
			want: []string{"no rule; udev cannot tie"}},
		{name: "bad vid", cfg: devices.Config{Name: "x", VID: "08011", PID: "0002"}, wantErr: "x: vid"},
		{name: "non-hex pid", cfg: devices.Config{Name: "x", VID: "0801", PID: "zz"}, wantErr: "4 hex digits"},
		{name: "quote in serial", cfg: devices.Config{Name: "x", VID: "0801", PID: "0002", Serial: `a", MODE="0666`}, wantErr: "quote"},
		{name: "glob in serial", cfg: devices.Config{Name: "x", VID: "0801", PID: "0002", Serial: "*"}, wantErr: "glob"},
		{name: "unknown transport", cfg: devices.Config{Name: "x", Transport: "bt", VID: "0801", PID: "0002"}, wantErr: "serial, hid or evdev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := UdevRules([]devices.Config{tc.cfg})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error with %q, got %v\n%s", tc.wantErr, err, out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(out), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			for _, l := range lines {
				if l != "" && !strings.HasPrefix(l, "#") && !strings.Contains(l, `GROUP="posagent", MODE="0660"`) {
					t.Errorf("rule without the posagent group and mode 0660: %s", l)
				}
				if strings.Contains(l, "SUBSYSTEM") && !strings.Contains(l, "ATTRS{idVendor}") && !strings.Contains(l, `KERNEL=="tty`) {
					t.Errorf("rule matches no specific device: %s", l)
				}
			}
		})
	}
}

// TestUdevRulesVerify runs udevadm's own parser over generated rules.
func TestUdevRulesVerify(t *testing.T) {
	if _, err := exec.LookPath("udevadm"); err != nil {
		t.Skip("udevadm not installed: cannot check the generated rules with udevadm verify")
	}
	if out, err := exec.Command("udevadm", "verify", "--help").CombinedOutput(); err != nil {
		t.Skipf("this udevadm has no verify verb (systemd 253 or later): %s", strings.TrimSpace(string(out)))
	}
	out, err := UdevRules([]devices.Config{
		{Name: "rfid1", VID: "1a86", PID: "7523", Serial: "X9"},
		{Name: "msr", Path: "/dev/ttyS0"},
		{Name: "scan", Transport: "hid", VID: "0c2e", PID: "0b61"},
		{Name: "wedge", Transport: "evdev", VID: "ffff", PID: "0035"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), UdevRulesName)
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("udevadm", "verify", p).CombinedOutput(); err != nil {
		t.Fatalf("udevadm verify: %v\n%s\n%s", err, b, out)
	}
}

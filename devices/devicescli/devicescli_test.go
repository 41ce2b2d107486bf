//go:build linux

package devicescli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"posagent/devices"
	"posagent/devices/evdev"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidtest"
	"posagent/devices/internal/devtest"
	"posagent/devices/serialdev"
)

func TestList(t *testing.T) {
	src := sources{
		serial: func() ([]serialdev.PortInfo, error) {
			return []serialdev.PortInfo{{Path: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", Serial: "A1", Product: "FT232R"}, {Path: "/dev/ttyS0"}}, nil
		},
		hid: func() (hiddev.Backend, error) {
			return hidtest.NewBackend(hiddev.DeviceInfo{Path: "1-2:1.0", VID: 0x0c2e, PID: 0x0b61, Product: "Xenon", UsagePage: 0x8C, Usage: 0x02}), nil
		},
		input: func() ([]evdev.InputDevice, error) {
			return []evdev.InputDevice{{Path: "/dev/input/event5", Bus: "0003", VID: "ffff", PID: "0035", Name: "RFID Reader", Keyboard: true}}, nil
		},
	}
	load := func() ([]devices.Config, []byte, error) {
		return []devices.Config{{Name: "rfid1", VID: "0403", PID: "6001", Decoder: "em4100"}}, nil, nil
	}
	var out, errw bytes.Buffer
	cmd := newCommand(load, src, nil, nil)
	cmd.SetArgs([]string{"list"})
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"TRANSPORT", "/dev/ttyUSB0", "FT232R", "rfid1", "1-2:1.0", "0x8C:0x02 (POS scanner)", "/dev/input/event5", "RFID Reader"} {
		if !strings.Contains(got, want) {
			t.Errorf("list output lacks %q:\n%s", want, got)
		}
	}
	src.hid = func() (hiddev.Backend, error) { return nil, hiddev.ErrNotCompiled }
	out.Reset()
	errw.Reset()
	cmd = newCommand(nil, src, nil, nil)
	cmd.SetArgs([]string{"list"})
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	if err := cmd.Execute(); err != nil || !strings.Contains(errw.String(), "HID support not compiled in") {
		t.Errorf("without HID: %v %q", err, errw.String())
	}
}

func TestMonitorAdHoc(t *testing.T) {
	p := devtest.NewPty(t)
	var out, errw devtest.Buffer
	cmd := newCommand(nil, system, []devices.Option{devices.WithBackoff(5*time.Millisecond, 50*time.Millisecond)}, nil)
	cmd.SetArgs([]string{"monitor", "--path", p.Path, "--decoder", "msr", "--till", "T9", "--count", "1"})
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(context.Background()) }()
	deadline := time.Now().Add(devtest.Wait)
	for !strings.Contains(out.String(), "ONLINE") {
		if time.Now().After(deadline) {
			t.Fatalf("monitor never went online: %s %s", out.String(), errw.String())
		}
		time.Sleep(5 * time.Millisecond) // polling output with a deadline
	}
	p.Write(t, []byte(";6222021234567890123=2512101?\r"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(devtest.Wait):
		t.Fatal("monitor did not stop after --count 1")
	}
	got := out.String()
	if !strings.Contains(got, "READ") || !strings.Contains(got, "622202*********0123") || !strings.Contains(got, "T9") {
		t.Errorf("monitor output:\n%s", got)
	}
	if strings.Contains(got, "6222021234567890123") {
		t.Error("full card number printed")
	}
}

func TestMonitorNeedsADevice(t *testing.T) {
	cmd := newCommand(nil, system, nil, nil)
	cmd.SetArgs([]string{"monitor"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--path") {
		t.Errorf("%v", err)
	}
	load := func() ([]devices.Config, []byte, error) {
		return []devices.Config{{Name: "a", Path: "/dev/null", Decoder: "msr"}}, []byte("0123456789abcdef"), nil
	}
	cmd = newCommand(load, system, nil, nil)
	cmd.SetArgs([]string{"monitor", "--device", "b"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("%v", err)
	}
}

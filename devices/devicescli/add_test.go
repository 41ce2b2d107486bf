//go:build linux

package devicescli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"posagent/agent/config"
	"posagent/devices"
	"posagent/devices/evdev"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidtest"
	"posagent/devices/serialdev"
)

func TestListAddKeepsComments(t *testing.T) {
	src := sources{
		serial: func() ([]serialdev.PortInfo, error) {
			return []serialdev.PortInfo{{Path: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", Serial: "A1"}, {Path: "/dev/ttyS0"}}, nil
		},
		hid: func() (hiddev.Backend, error) {
			return hidtest.NewBackend(hiddev.DeviceInfo{Path: "1-2:1.0", VID: 0x0c2e, PID: 0x0b61, Product: "Xenon", UsagePage: 0x8C, Usage: 0x02}), nil
		},
		input: func() ([]evdev.InputDevice, error) { return nil, evdev.ErrNotSupported },
	}
	p := filepath.Join(t.TempDir(), "posagent.yaml")
	orig := "# till 7 of store 42\nstore: s42 # the store code HQ knows\ntill: t7\n"
	if err := os.WriteFile(p, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	parse := func(b []byte) error { _, err := config.Parse(b); return err }
	load := func() ([]devices.Config, []byte, error) {
		c, err := config.Load(p)
		if err != nil {
			return nil, nil, err
		}
		var out []devices.Config
		for _, d := range c.Devices {
			out = append(out, devices.Config{Name: d.Name, Transport: d.Transport, Path: d.Path, VID: d.VID, PID: d.PID, Serial: d.Serial})
		}
		return out, nil, nil
	}
	run := func(args ...string) (string, error) {
		var out, errw bytes.Buffer
		cmd := newCommand(load, src, nil, &addTarget{file: func() string { return p }, check: parse})
		cmd.SetArgs(append([]string{"list"}, args...))
		cmd.SetOut(&out)
		cmd.SetErr(&errw)
		err := cmd.Execute()
		return out.String() + errw.String(), err
	}

	if out, err := run("--add", "1", "--decoder", "em4100", "--name", "rfid1"); err != nil {
		t.Fatalf("add serial: %v\n%s", err, out)
	}
	if out, err := run("--add", "3", "--decoder", "barcode"); err != nil {
		t.Fatalf("add hid: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	t.Logf("edited config:\n%s", got)
	for _, want := range []string{"# till 7 of store 42", "# the store code HQ knows", `name: "rfid1"`, `vid: "0403"`, `serial: "A1"`, `hid_report: "pos"`, `vid: "0c2e"`} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	c, err := config.Load(p)
	if err != nil || len(c.Devices) != 2 || c.Devices[1].Name != "reader2" {
		t.Fatalf("edited config: %v %+v", err, c.Devices)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", st.Mode().Perm())
	}
	out, _ := run()
	if !strings.Contains(out, "rfid1") || !strings.Contains(out, "reader2") {
		t.Errorf("list does not show the added readers as configured:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--add", "1", "--decoder", "em4100"}, "already configured as rfid1"},
		{[]string{"--add", "9", "--decoder", "em4100"}, "rows 1 to 3"},
		{[]string{"--add", "2"}, "--decoder"},
		{[]string{"--add", "2", "--decoder", "nope"}, "left unchanged"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: want %q, got %v", tc.args, tc.want, err)
		}
	}
	if b2, _ := os.ReadFile(p); !bytes.Equal(b, b2) {
		t.Errorf("a refused --add changed the file")
	}
}

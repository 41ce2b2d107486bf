//go:build linux

package serialdev_test

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"posagent/devices/internal/devtest"
	"posagent/devices/serialdev"
)

func TestOpenPty(t *testing.T) {
	if _, err := serialdev.Open(serialdev.Config{Path: filepath.Join(t.TempDir(), "nope")}); !errors.Is(err, serialdev.ErrNotFound) {
		t.Errorf("missing port: %v", err)
	}
	p := devtest.NewPty(t)
	port, err := serialdev.Open(serialdev.Config{Path: p.Path, Baud: 115200, FlowControl: "rtscts"})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	tio, err := unix.IoctlGetTermios(int(p.Slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Cflag&unix.CRTSCTS == 0 {
		t.Error("CRTSCTS not set for flow_control rtscts")
	}
	p.Write(t, []byte("abc"))
	buf := make([]byte, 8)
	n, err := port.Read(buf)
	if err != nil || string(buf[:n]) == "" {
		t.Errorf("read %q %v", buf[:n], err)
	}
}

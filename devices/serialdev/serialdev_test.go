package serialdev_test

import (
	"errors"
	"strings"
	"testing"

	"go.bug.st/serial"
	"posagent/devices/serialdev"
)

func TestMode(t *testing.T) {
	m, err := serialdev.Config{}.Mode()
	if err != nil || m.BaudRate != 9600 || m.DataBits != 8 || m.Parity != serial.NoParity || m.StopBits != serial.OneStopBit {
		t.Errorf("defaults: %+v %v", m, err)
	}
	m, err = serialdev.Config{Baud: 2400, DataBits: 7, Parity: "even", StopBits: "2"}.Mode()
	if err != nil || m.BaudRate != 2400 || m.DataBits != 7 || m.Parity != serial.EvenParity || m.StopBits != serial.TwoStopBits {
		t.Errorf("7E2: %+v %v", m, err)
	}
	for _, bad := range []serialdev.Config{{Baud: 1}, {DataBits: 9}, {Parity: "x"}, {StopBits: "3"}, {FlowControl: "xonxoff"}, {FlowControl: "dsr"}} {
		if _, err := bad.Mode(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	ports := []serialdev.PortInfo{
		{Path: "/dev/ttyS0"},
		{Path: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", Serial: "A1"},
		{Path: "/dev/ttyUSB1", IsUSB: true, VID: "0403", PID: "6001", Serial: "B2"},
	}
	p, err := serialdev.Match(ports, "0403", "6001", "B2")
	if err != nil || p.Path != "/dev/ttyUSB1" {
		t.Errorf("%+v %v", p, err)
	}
	if _, err := serialdev.Match(ports, "0403", "6001", ""); err == nil || !strings.Contains(err.Error(), "add the serial number") {
		t.Errorf("ambiguous: %v", err)
	}
	if _, err := serialdev.Match(ports, "1a86", "7523", ""); !errors.Is(err, serialdev.ErrNotFound) {
		t.Errorf("absent: %v", err)
	}
}

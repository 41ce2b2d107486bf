// Package serialdev opens RS-232 and USB virtual-COM card readers and
// scanners with go.bug.st/serial, and enumerates ports with their USB
// identity so a reader that moves between ports is still found.
package serialdev

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// Errors callers branch on (errors.Is).
var (
	ErrBusy       = errors.New("serial port is in use by another process")
	ErrNotFound   = errors.New("serial port not found")
	ErrPermission = errors.New("permission denied on serial port")
)

// Config is the line setting of one port.
type Config struct {
	Path     string
	Baud     int    // 0 → 9600
	DataBits int    // 0 → 8
	Parity   string // none (default), odd, even, mark, space
	StopBits string // "1" (default), "1.5", "2"
	// FlowControl: "none" (default) or "rtscts". go.bug.st/serial has no
	// flow-control setting and clears CRTSCTS when it opens a port; on Linux
	// we set CRTSCTS on the open descriptor ourselves, elsewhere rtscts is
	// refused. XON/XOFF is not offered: the library clears IXON/IXOFF and
	// readers that only send never need it.
	FlowControl string
}

// Mode validates c and returns the library mode.
func (c Config) Mode() (*serial.Mode, error) {
	m := &serial.Mode{BaudRate: c.Baud, DataBits: c.DataBits}
	if m.BaudRate == 0 {
		m.BaudRate = 9600
	}
	if m.BaudRate < 50 || m.BaudRate > 4000000 {
		return nil, fmt.Errorf("baud %d out of range: use the reader's rate, e.g. 9600 or 115200", c.Baud)
	}
	if m.DataBits == 0 {
		m.DataBits = 8
	}
	if m.DataBits < 5 || m.DataBits > 8 {
		return nil, fmt.Errorf("data_bits %d invalid: use 5, 6, 7 or 8", c.DataBits)
	}
	switch strings.ToLower(c.Parity) {
	case "", "none", "n":
		m.Parity = serial.NoParity
	case "odd", "o":
		m.Parity = serial.OddParity
	case "even", "e":
		m.Parity = serial.EvenParity
	case "mark", "m":
		m.Parity = serial.MarkParity
	case "space", "s":
		m.Parity = serial.SpaceParity
	default:
		return nil, fmt.Errorf("parity %q invalid: use none, odd, even, mark or space", c.Parity)
	}
	switch c.StopBits {
	case "", "1":
		m.StopBits = serial.OneStopBit
	case "1.5":
		m.StopBits = serial.OnePointFiveStopBits
	case "2":
		m.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("stop_bits %q invalid: use 1, 1.5 or 2", c.StopBits)
	}
	switch strings.ToLower(c.FlowControl) {
	case "", "none":
	case "rtscts":
		if !rtsctsSupported {
			return nil, fmt.Errorf("flow_control rtscts is not supported on this OS by go.bug.st/serial: use none (card readers only send)")
		}
	case "xonxoff":
		return nil, fmt.Errorf("flow_control xonxoff is not supported (go.bug.st/serial clears IXON/IXOFF): use none or rtscts")
	default:
		return nil, fmt.Errorf("flow_control %q invalid: use none or rtscts", c.FlowControl)
	}
	return m, nil
}

// Port is an open serial port; Close unblocks a pending Read. Write is for
// readers the host must drive (PN532).
type Port = io.ReadWriteCloser

// Open opens and configures the port exclusively (TIOCEXCL on Unix).
// Errors wrap ErrBusy, ErrNotFound or ErrPermission where that applies.
func Open(c Config) (Port, error) {
	m, err := c.Mode()
	if err != nil {
		return nil, err
	}
	p, err := serial.Open(c.Path, m)
	if err != nil {
		return nil, classify(c.Path, err)
	}
	if strings.EqualFold(c.FlowControl, "rtscts") {
		if err := enableRTSCTS(c.Path); err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: enabling RTS/CTS flow control: %w", c.Path, err)
		}
	}
	return p, nil
}

func classify(path string, err error) error {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		switch pe.Code() {
		case serial.PortBusy:
			return fmt.Errorf("%s: %w: close the other program holding it (another posagent, a terminal, ModemManager)", path, ErrBusy)
		case serial.PermissionDenied:
			return fmt.Errorf("%s: %w: add the service user to the dialout/posagent group (see scripts/udev/99-posagent.rules)", path, ErrPermission)
		case serial.PortNotFound:
			return fmt.Errorf("%s: %w", path, ErrNotFound)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w (unplugged?)", path, ErrNotFound)
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// PortInfo is one serial port with its USB identity when it has one.
type PortInfo struct {
	Path         string
	IsUSB        bool
	VID, PID     string // 4 lowercase hex digits
	Serial       string
	Manufacturer string
	Product      string
}

// Enumerator lists ports; tests substitute their own.
type Enumerator func() ([]PortInfo, error)

// List enumerates the system's serial ports.
func List() ([]PortInfo, error) {
	names, err := serial.GetPortsList()
	if err != nil {
		return nil, fmt.Errorf("listing serial ports: %w", err)
	}
	details, derr := enumerator.GetDetailedPortsList()
	byName := map[string]*enumerator.PortDetails{}
	if derr == nil {
		for _, d := range details {
			if d != nil && d.Name != "" {
				byName[d.Name] = d
			}
		}
	}
	out := make([]PortInfo, 0, len(names))
	for _, n := range names {
		pi := PortInfo{Path: n}
		if d := byName[n]; d != nil {
			pi.IsUSB = d.IsUSB
			pi.VID, pi.PID = strings.ToLower(d.VID), strings.ToLower(d.PID)
			pi.Serial, pi.Manufacturer, pi.Product = d.SerialNumber, d.Manufacturer, d.Product
		}
		out = append(out, pi)
	}
	return out, nil
}

// Match returns the one port with vid:pid (and serial number when given).
func Match(ports []PortInfo, vid, pid, serialNo string) (PortInfo, error) {
	var hits []PortInfo
	for _, p := range ports {
		if strings.EqualFold(p.VID, vid) && strings.EqualFold(p.PID, pid) && (serialNo == "" || p.Serial == serialNo) {
			hits = append(hits, p)
		}
	}
	switch len(hits) {
	case 0:
		sn := ""
		if serialNo != "" {
			sn = " serial " + serialNo
		}
		return PortInfo{}, fmt.Errorf("no serial port for USB %s:%s%s: %w (unplugged?)", vid, pid, sn, ErrNotFound)
	case 1:
		return hits[0], nil
	default:
		paths := make([]string, len(hits))
		for i, h := range hits {
			paths[i] = h.Path
		}
		return PortInfo{}, fmt.Errorf("%d serial ports match USB %s:%s (%s): add the serial number or a path", len(hits), vid, pid, strings.Join(paths, ", "))
	}
}

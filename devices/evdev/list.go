package evdev

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotSupported is returned on operating systems without evdev.
var ErrNotSupported = errors.New("evdev keyboard-wedge capture is only supported on Linux: on Windows or macOS put the reader in HID POS or serial (virtual COM) mode")

// ErrBusy means another process holds the exclusive grab.
var ErrBusy = errors.New("input device is grabbed by another process (EVIOCGRAB: EBUSY): stop the other program (another posagent, a kiosk tool) that claimed it")

// InputDevice is one entry of /proc/bus/input/devices.
type InputDevice struct {
	Name     string
	Path     string // /dev/input/eventN
	Bus      string // 0003 = USB
	VID, PID string // 4 lowercase hex digits
	Serial   string // "U: Uniq=" (USB serial number when the driver sets it)
	Phys     string
	Keyboard bool // has a kbd handler
}

// ParseDevices parses the /proc/bus/input/devices format.
func ParseDevices(r io.Reader) ([]InputDevice, error) {
	var out []InputDevice
	var cur InputDevice
	flush := func() {
		if cur.Path != "" {
			out = append(out, cur)
		}
		cur = InputDevice{}
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if len(line) < 3 || line[1] != ':' {
			continue
		}
		val := strings.TrimSpace(line[2:])
		switch line[0] {
		case 'I':
			for _, f := range strings.Fields(val) {
				k, v, _ := strings.Cut(f, "=")
				switch k {
				case "Bus":
					cur.Bus = strings.ToLower(v)
				case "Vendor":
					cur.VID = strings.ToLower(v)
				case "Product":
					cur.PID = strings.ToLower(v)
				}
			}
		case 'N':
			cur.Name = strings.Trim(strings.TrimPrefix(val, "Name="), `"`)
		case 'P':
			cur.Phys = strings.TrimPrefix(val, "Phys=")
		case 'U':
			cur.Serial = strings.TrimPrefix(val, "Uniq=")
		case 'H':
			for _, h := range strings.Fields(strings.TrimPrefix(val, "Handlers=")) {
				if h == "kbd" {
					cur.Keyboard = true
				}
				if strings.HasPrefix(h, "event") {
					cur.Path = "/dev/input/" + h
				}
			}
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading input device list: %w", err)
	}
	return out, nil
}

// Match returns the one device with vid:pid (and serial when given). More
// than one match is an error: we never grab a keyboard that is not the
// configured reader.
func Match(devs []InputDevice, vid, pid, serial string) (InputDevice, error) {
	var hits []InputDevice
	for _, d := range devs {
		if !strings.EqualFold(d.VID, vid) || !strings.EqualFold(d.PID, pid) {
			continue
		}
		if serial != "" && d.Serial != serial {
			continue
		}
		if !d.Keyboard {
			continue
		}
		hits = append(hits, d)
	}
	switch len(hits) {
	case 0:
		return InputDevice{}, fmt.Errorf("no keyboard input device %s:%s%s is connected", vid, pid, serialSuffix(serial))
	case 1:
		return hits[0], nil
	default:
		paths := make([]string, len(hits))
		for i, h := range hits {
			paths[i] = h.Path
		}
		return InputDevice{}, fmt.Errorf("%d input devices match %s:%s%s (%s): set serial or a /dev/input/by-id path so only the reader is grabbed", len(hits), vid, pid, serialSuffix(serial), strings.Join(paths, ", "))
	}
}

func serialSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " serial " + s
}

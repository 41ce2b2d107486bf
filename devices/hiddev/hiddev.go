// Package hiddev reads USB HID card readers and scanners: HID POS barcode
// scanners (usage page 0x8C), MagTek-style swipe readers and keyboard-wedge
// readers in boot-report form. The karalabe/hid backend needs cgo; without
// it (or with -tags nohid) System returns ErrNotCompiled so the caller can
// say so at start-up instead of silently reading nothing.
package hiddev

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"posagent/devices/hiddev/hidreport"
)

// ErrNotCompiled is returned by System in builds without HID support.
var ErrNotCompiled = errors.New("HID support not compiled in (binary built without cgo or with -tags nohid): rebuild with CGO_ENABLED=1, or run the reader in serial (virtual COM) or keyboard-wedge (evdev) mode")

// ErrBusy means the device is held by another process or driver.
var ErrBusy = errors.New("HID device is claimed by another process or driver")

// UsagePagePOS is the HID POS usage page of barcode scanners.
const UsagePagePOS = 0x8C

// DeviceInfo describes one HID interface.
type DeviceInfo struct {
	Path         string
	VID, PID     uint16
	Serial       string
	Manufacturer string
	Product      string
	UsagePage    uint16 // Windows/macOS only; 0 on Linux (libusb backend)
	Usage        uint16
	Interface    int
}

// ID is "vvvv:pppp".
func (d DeviceInfo) ID() string { return fmt.Sprintf("%04x:%04x", d.VID, d.PID) }

// ReportSource yields one input report per Read. The karalabe device
// implements it; tests implement it with recorded reports.
type ReportSource interface {
	Read(p []byte) (int, error)
	Close() error
}

// Backend enumerates and opens HID devices.
type Backend interface {
	Enumerate() ([]DeviceInfo, error)
	Open(DeviceInfo) (ReportSource, error)
}

// Match picks the configured device: by path, or by VID:PID plus serial.
// Several matches without a serial is an error, so we never claim a device
// (a keyboard!) that is not the configured reader.
func Match(devs []DeviceInfo, path string, vid, pid uint16, serial string) (DeviceInfo, error) {
	var hits []DeviceInfo
	for _, d := range devs {
		if path != "" {
			if d.Path == path {
				hits = append(hits, d)
			}
			continue
		}
		if d.VID == vid && d.PID == pid && (serial == "" || d.Serial == serial) {
			hits = append(hits, d)
		}
	}
	want := path
	if want == "" {
		want = fmt.Sprintf("%04x:%04x", vid, pid)
		if serial != "" {
			want += " serial " + serial
		}
	}
	switch len(hits) {
	case 0:
		return DeviceInfo{}, fmt.Errorf("HID device %s is not connected", want)
	case 1:
		return hits[0], nil
	}
	paths := make([]string, len(hits))
	for i, h := range hits {
		paths[i] = h.Path
	}
	return DeviceInfo{}, fmt.Errorf("%d HID interfaces match %s (%s): add serial or path so only the reader is claimed", len(hits), want, strings.Join(paths, ", "))
}

// Report modes.
const (
	ModePOS      = "pos"      // HID POS scanner reports
	ModeMSR      = "msr"      // MagTek-style track reports
	ModeKeyboard = "keyboard" // keyboard boot reports (wedge readers)
)

// Chunk is what a Reader yields: either text still to be framed (keyboard
// mode) or a complete frame (Framed) ready for the decoder.
type Chunk struct {
	Data      []byte
	At        time.Time
	Framed    bool
	Symbology string // non-AIM HID POS symbology id, "" otherwise
	Reports   int
}

// Reader turns a ReportSource into chunks.
type Reader struct {
	src  ReportSource
	mode string
	pos  hidreport.POS
	kb   *hidreport.Keyboard
	buf  []byte
	now  func() time.Time
}

// NewReader reads src in mode (pos|msr|keyboard); layout is used in keyboard mode.
func NewReader(src ReportSource, mode string, layout *hidreport.Layout) (*Reader, error) {
	r := &Reader{src: src, mode: strings.ToLower(mode), buf: make([]byte, 1024), now: time.Now}
	switch r.mode {
	case ModePOS, ModeMSR:
	case ModeKeyboard:
		if layout == nil {
			return nil, errors.New("keyboard mode needs a layout")
		}
		r.kb = hidreport.NewKeyboard(layout)
	default:
		return nil, fmt.Errorf("hid_report %q unknown: use pos (HID POS scanner), msr (MagTek-style card reader) or keyboard (wedge)", mode)
	}
	return r, nil
}

// ValidMode reports whether mode is a known report mode.
func ValidMode(mode string) bool {
	switch strings.ToLower(mode) {
	case ModePOS, ModeMSR, ModeKeyboard:
		return true
	}
	return false
}

// ReportError is a malformed report; the stream stays usable.
type ReportError struct{ Err error }

func (e *ReportError) Error() string { return e.Err.Error() }
func (e *ReportError) Unwrap() error { return e.Err }

// Next blocks for the next chunk. A *ReportError is a bad report (keep
// reading); any other error ends the stream (unplug, close). A label whose
// continuation reports were cut off is dropped, never delivered.
func (r *Reader) Next() (Chunk, error) {
	for {
		n, err := r.src.Read(r.buf)
		if err != nil {
			r.pos.Reset()
			return Chunk{}, err
		}
		if n == 0 {
			continue // read timeout on some backends
		}
		at := r.now()
		rep := r.buf[:n]
		switch r.mode {
		case ModeKeyboard:
			s, err := r.kb.Push(rep)
			if err != nil {
				return Chunk{}, &ReportError{err}
			}
			if s != "" {
				return Chunk{Data: []byte(s), At: at}, nil
			}
		case ModePOS:
			l, err := r.pos.Push(rep)
			if err != nil {
				return Chunk{}, &ReportError{err}
			}
			if l != nil {
				c := Chunk{At: at, Framed: true, Reports: l.Reports}
				if strings.HasPrefix(l.Symbology, "]") {
					c.Data = append([]byte(l.Symbology), l.Data...)
				} else {
					c.Data, c.Symbology = l.Data, l.Symbology
				}
				return c, nil
			}
		case ModeMSR:
			t, err := hidreport.ParseMagTek(rep)
			if err != nil {
				return Chunk{}, &ReportError{err}
			}
			return Chunk{Data: hidreport.MagTekFrame(t), At: at, Framed: true, Reports: 1}, nil
		}
	}
}

// Close closes the source.
func (r *Reader) Close() error { return r.src.Close() }

// Package evdev captures keyboard-wedge card readers and scanners on Linux
// through /dev/input/event* with an exclusive grab (EVIOCGRAB), so a swipe
// does not also type into the POS application. Key codes are decoded with
// our own layout tables (hidreport), never the OS keymap.
package evdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"posagent/devices/hiddev/hidreport"
)

// EventSize is the size of struct input_event on this platform: a struct
// timeval of two longs, then type (u16), code (u16) and value (s32).
const EventSize = 2*strconv.IntSize/8 + 8

// Event types and values we use.
const (
	EvSyn = 0x00
	EvKey = 0x01

	KeyRelease = 0
	KeyPress   = 1
	KeyRepeat  = 2
)

// InputEvent is one decoded struct input_event.
type InputEvent struct {
	Time  time.Time
	Type  uint16
	Code  uint16
	Value int32
}

// ParseEvent decodes one native-endian input_event of EventSize bytes.
func ParseEvent(b []byte) (InputEvent, error) {
	if len(b) != EventSize {
		return InputEvent{}, fmt.Errorf("input_event has %d bytes, want %d", len(b), EventSize)
	}
	var sec, usec int64
	w := strconv.IntSize / 8
	if w == 8 {
		sec, usec = int64(binary.NativeEndian.Uint64(b[0:])), int64(binary.NativeEndian.Uint64(b[8:]))
	} else {
		sec, usec = int64(int32(binary.NativeEndian.Uint32(b[0:]))), int64(binary.NativeEndian.Uint32(b[4:]))
	}
	o := 2 * w
	return InputEvent{
		Time:  time.Unix(sec, usec*1000),
		Type:  binary.NativeEndian.Uint16(b[o:]),
		Code:  binary.NativeEndian.Uint16(b[o+2:]),
		Value: int32(binary.NativeEndian.Uint32(b[o+4:])),
	}, nil
}

// AppendEvent encodes e in the native input_event layout (for recordings).
func AppendEvent(dst []byte, e InputEvent) []byte {
	w := strconv.IntSize / 8
	b := make([]byte, EventSize)
	us := e.Time.UnixMicro()
	if w == 8 {
		binary.NativeEndian.PutUint64(b[0:], uint64(us/1e6))
		binary.NativeEndian.PutUint64(b[8:], uint64(us%1e6))
	} else {
		binary.NativeEndian.PutUint32(b[0:], uint32(us/1e6))
		binary.NativeEndian.PutUint32(b[4:], uint32(us%1e6))
	}
	o := 2 * w
	binary.NativeEndian.PutUint16(b[o:], e.Type)
	binary.NativeEndian.PutUint16(b[o+2:], e.Code)
	binary.NativeEndian.PutUint32(b[o+4:], uint32(e.Value))
	return append(dst, b...)
}

// Linux key codes of modifiers.
const (
	keyLeftCtrl   = 29
	keyLeftShift  = 42
	keyRightShift = 54
	keyLeftAlt    = 56
	keyRightCtrl  = 97
	keyRightAlt   = 100
)

// usageOf maps Linux KEY_* codes to HID keyboard usages so evdev and HID
// boot reports share one set of layout tables.
var usageOf = func() map[uint16]byte {
	m := map[uint16]byte{}
	letters := map[uint16]byte{ // KEY_A.. by QWERTY position
		30: 'a', 48: 'b', 46: 'c', 32: 'd', 18: 'e', 33: 'f', 34: 'g', 35: 'h', 23: 'i',
		36: 'j', 37: 'k', 38: 'l', 50: 'm', 49: 'n', 24: 'o', 25: 'p', 16: 'q', 19: 'r',
		31: 's', 20: 't', 22: 'u', 47: 'v', 17: 'w', 45: 'x', 21: 'y', 44: 'z',
	}
	for code, l := range letters {
		m[code] = 0x04 + (l - 'a')
	}
	for i := uint16(0); i < 10; i++ { // KEY_1(2)..KEY_0(11) → 0x1E..0x27
		m[2+i] = 0x1E + byte(i)
	}
	for code, u := range map[uint16]byte{
		28: 0x28, 1: 0x29, 14: 0x2A, 15: 0x2B, 57: 0x2C, 12: 0x2D, 13: 0x2E, 26: 0x2F,
		27: 0x30, 43: 0x31, 39: 0x33, 40: 0x34, 41: 0x35, 51: 0x36, 52: 0x37, 53: 0x38,
		86: 0x64, // KEY_102ND
		98: 0x54, 55: 0x55, 74: 0x56, 78: 0x57, 96: 0x58,
		79: 0x59, 80: 0x5A, 81: 0x5B, 75: 0x5C, 76: 0x5D, 77: 0x5E, 71: 0x5F, 72: 0x60,
		73: 0x61, 82: 0x62, 83: 0x63,
	} {
		m[code] = u
	}
	return m
}()

// Keys turns key events into text with a layout, tracking modifiers.
type Keys struct {
	layout             *hidreport.Layout
	lshift, rshift     bool
	lctrl, rctrl, lalt bool
	ralt               bool
	Unmapped           int
}

// NewKeys decodes with layout l.
func NewKeys(l *hidreport.Layout) *Keys { return &Keys{layout: l} }

// Reset forgets modifier state.
func (k *Keys) Reset() { *k = Keys{layout: k.layout} }

// Feed consumes one event and returns the text it produced, if any.
func (k *Keys) Feed(e InputEvent) string {
	if e.Type != EvKey || e.Value == KeyRepeat {
		return ""
	}
	down := e.Value == KeyPress
	switch e.Code {
	case keyLeftShift:
		k.lshift = down
	case keyRightShift:
		k.rshift = down
	case keyLeftCtrl:
		k.lctrl = down
	case keyRightCtrl:
		k.rctrl = down
	case keyLeftAlt:
		k.lalt = down
	case keyRightAlt:
		k.ralt = down
	default:
		if !down {
			return ""
		}
		u, ok := usageOf[e.Code]
		if !ok {
			k.Unmapped++
			return ""
		}
		altGr := k.ralt || ((k.lctrl || k.rctrl) && k.lalt)
		r, ok := k.layout.Char(u, k.lshift || k.rshift, altGr)
		if !ok {
			k.Unmapped++
			return ""
		}
		return string(r)
	}
	return ""
}

// TextReader reads raw input_event bytes from r and returns the text typed,
// as an io.Reader. Live devices and recorded streams go through it alike.
type TextReader struct {
	r    io.Reader
	keys *Keys
	buf  []byte // a whole number of events, plus room for one
	out  []byte
	err  error
}

// NewTextReader decodes the input_event stream r with layout l.
func NewTextReader(r io.Reader, l *hidreport.Layout) *TextReader {
	return &TextReader{r: r, keys: NewKeys(l), buf: make([]byte, 65*EventSize)}
}

// Read returns decoded text. It blocks until at least one character is
// typed or the underlying reader fails; a partial trailing event is an error
// (io.ErrUnexpectedEOF) because the kernel never splits events.
func (t *TextReader) Read(p []byte) (int, error) {
	for len(t.out) == 0 {
		if t.err != nil {
			return 0, t.err
		}
		n, err := io.ReadAtLeast(t.r, t.buf[:64*EventSize], EventSize)
		if rest := n % EventSize; rest != 0 && err == nil {
			var m int
			m, err = io.ReadFull(t.r, t.buf[n:n+EventSize-rest])
			n += m
		}
		whole := n / EventSize * EventSize
		for off := 0; off < whole; off += EventSize {
			ev, perr := ParseEvent(t.buf[off : off+EventSize])
			if perr != nil {
				return 0, perr
			}
			t.out = append(t.out, t.keys.Feed(ev)...)
		}
		if err != nil {
			if n != whole || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("truncated input_event stream: %w", io.ErrUnexpectedEOF)
			}
			t.err = err // after the text decoded so far
		}
	}
	n := copy(p, t.out)
	t.out = t.out[n:]
	return n, nil
}

// Unmapped counts key presses the layout could not turn into text.
func (t *TextReader) Unmapped() int { return t.keys.Unmapped }

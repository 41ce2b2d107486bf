package hidreport

import (
	"fmt"
	"strings"
)

// Modifier bits of a keyboard boot report's first byte.
const (
	ModLeftCtrl   = 1 << 0
	ModLeftShift  = 1 << 1
	ModLeftAlt    = 1 << 2
	ModRightCtrl  = 1 << 4
	ModRightShift = 1 << 5
	ModRightAlt   = 1 << 6 // AltGr on ISO layouts
)

// Keyboard turns keyboard boot reports (modifier, reserved, 6 key usages)
// into the text a wedge reader types. Only keys newly pressed since the
// previous report produce characters, so held keys and the release report
// between two equal characters are handled like a real keyboard would.
type Keyboard struct {
	layout *Layout
	prev   [6]byte
	// Unmapped counts pressed keys the layout has no character for.
	Unmapped int
}

// NewKeyboard decodes with layout (never the OS layout).
func NewKeyboard(l *Layout) *Keyboard { return &Keyboard{layout: l} }

// Reset forgets held keys (after a reconnect).
func (k *Keyboard) Reset() { k.prev = [6]byte{}; k.Unmapped = 0 }

// Push decodes one report: 8 bytes, or 9 when the device numbers its
// reports (the report ID comes first and is skipped).
func (k *Keyboard) Push(report []byte) (string, error) {
	switch len(report) {
	case 8:
	case 9:
		report = report[1:]
	default:
		return "", fmt.Errorf("keyboard report has %d bytes, want 8 (boot protocol) or 9 (with report ID): set hid_report to the reader's actual mode", len(report))
	}
	mod := report[0]
	keys := report[2:8]
	if keys[0] == UsageErrRollOvr {
		// Phantom state: too many keys down. Keep the previous state.
		return "", nil
	}
	shift := mod&(ModLeftShift|ModRightShift) != 0
	altGr := mod&ModRightAlt != 0 || (mod&(ModLeftCtrl|ModRightCtrl) != 0 && mod&ModLeftAlt != 0)
	var b strings.Builder
	for _, u := range keys {
		if u == 0 || held(k.prev, u) {
			continue
		}
		if r, ok := k.layout.Char(u, shift, altGr); ok {
			b.WriteRune(r)
		} else {
			k.Unmapped++
		}
	}
	copy(k.prev[:], keys)
	return b.String(), nil
}

func held(prev [6]byte, u byte) bool {
	for _, p := range prev {
		if p == u {
			return true
		}
	}
	return false
}

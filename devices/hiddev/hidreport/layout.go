// Package hidreport parses USB HID input reports from card readers and
// barcode scanners: HID POS scanner reports (usage page 0x8C), MagTek-style
// magnetic-stripe track reports and keyboard boot reports. It is pure: no I/O,
// no state beyond the reassembly buffers callers own, and it imports nothing
// of ours, so evdev and the HID backend share the same decoding.
package hidreport

import (
	"fmt"
	"sort"
	"strings"
)

// Layout maps HID keyboard usages (usage page 0x07) to characters the way a
// given national keyboard layout would. Wedge readers "type" by usage, so we
// decode with the layout the reader was configured for, never the OS layout.
type Layout struct {
	Name   string
	normal map[byte]rune
	shift  map[byte]rune
	altGr  map[byte]rune
}

// Usages used by callers.
const (
	UsageEnter      byte = 0x28
	UsageKeypadEnt  byte = 0x58
	UsageErrRollOvr byte = 0x01
)

// Char returns the character produced by usage with the given modifiers, and
// false when the key produces no character (function keys, unknown usages).
func (l *Layout) Char(usage byte, shift, altGr bool) (rune, bool) {
	var m map[byte]rune
	switch {
	case altGr:
		m = l.altGr
	case shift:
		m = l.shift
	default:
		m = l.normal
	}
	r, ok := m[usage]
	return r, ok
}

var layouts = map[string]*Layout{}

// Layouts lists the names LayoutByName accepts.
func Layouts() []string {
	out := make([]string, 0, len(layouts))
	for k := range layouts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LayoutByName returns the named layout; "" means "us".
func LayoutByName(name string) (*Layout, error) {
	if name == "" {
		name = "us"
	}
	l, ok := layouts[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown keyboard layout %q: use one of %s (the layout the reader is programmed for)", name, strings.Join(Layouts(), ", "))
	}
	return l, nil
}

func init() {
	layouts["us"] = usLayout()
	layouts["de"] = deLayout()
}

// common fills keys that are the same in every supported layout.
func common(n, s map[byte]rune) {
	for i := byte(0); i < 26; i++ {
		n[0x04+i] = rune('a' + i)
		s[0x04+i] = rune('A' + i)
	}
	for i := byte(0); i < 9; i++ { // 1..9
		n[0x1E+i] = rune('1' + i)
	}
	n[0x27] = '0'
	for _, m := range []map[byte]rune{n, s} {
		m[0x28] = '\r'
		m[0x2B] = '\t'
		m[0x2C] = ' '
		// Keypad: wedge readers in "numeric keypad" mode send these.
		m[0x54] = '/'
		m[0x55] = '*'
		m[0x56] = '-'
		m[0x57] = '+'
		m[0x58] = '\r'
	}
	// Keypad digits only without shift (shift turns them into navigation keys).
	for i := byte(0); i < 9; i++ {
		n[0x59+i] = rune('1' + i)
	}
	n[0x62] = '0'
	n[0x63] = '.'
}

// key is a key whose characters differ by layout: unshifted and shifted.
type key struct {
	u    byte
	n, s rune
}

// build fills the keys every layout shares, then the layout's shifted digit
// row (the character of shift+0 first, then shift+1..9) and its own keys.
func build(shiftedDigits string, keys []key) (n, s map[byte]rune) {
	n, s = map[byte]rune{}, map[byte]rune{}
	common(n, s)
	// By rune, not by byte: a shifted digit may take two bytes (§).
	for i, r := range []rune(shiftedDigits) {
		if i == 0 {
			s[0x27] = r
			continue
		}
		s[0x1E+byte(i-1)] = r
	}
	for _, k := range keys {
		n[k.u], s[k.u] = k.n, k.s
	}
	return n, s
}

func usLayout() *Layout {
	n, s := build(")!@#$%^&*(", []key{
		{0x2D, '-', '_'}, {0x2E, '=', '+'}, {0x2F, '[', '{'}, {0x30, ']', '}'},
		{0x31, '\\', '|'}, {0x32, '#', '~'}, {0x33, ';', ':'}, {0x34, '\'', '"'},
		{0x35, '`', '~'}, {0x36, ',', '<'}, {0x37, '.', '>'}, {0x38, '/', '?'},
		{0x64, '\\', '|'},
	})
	return &Layout{Name: "us", normal: n, shift: s, altGr: map[byte]rune{}}
}

func deLayout() *Layout {
	n, s := build("=!\"§$%&/()", []key{
		// QWERTZ: the keys US calls Y and Z are swapped.
		{0x1C, 'z', 'Z'}, {0x1D, 'y', 'Y'},
		{0x2D, 'ß', '?'}, {0x2E, '´', '`'}, {0x2F, 'ü', 'Ü'}, {0x30, '+', '*'},
		{0x31, '#', '\''}, {0x32, '#', '\''}, {0x33, 'ö', 'Ö'}, {0x34, 'ä', 'Ä'},
		{0x35, '^', '°'}, {0x36, ',', ';'}, {0x37, '.', ':'}, {0x38, '-', '_'},
		{0x64, '<', '>'},
	})
	a := map[byte]rune{
		0x14: '@', 0x08: '€', 0x10: 'µ', 0x1F: '²', 0x20: '³',
		0x24: '{', 0x25: '[', 0x26: ']', 0x27: '}', 0x2D: '\\', 0x30: '~', 0x64: '|',
	}
	return &Layout{Name: "de", normal: n, shift: s, altGr: a}
}

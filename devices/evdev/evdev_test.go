package evdev

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"posagent/devices/hiddev/hidreport"
)

// loadEvents turns a text recording into raw native input_event bytes, the
// exact stream /dev/input/eventN delivers.
func loadEvents(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var raw []byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		sec, usec, _ := strings.Cut(fs[0], ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		us, _ := strconv.ParseInt(usec, 10, 64)
		ty, _ := strconv.Atoi(fs[1])
		code, _ := strconv.Atoi(fs[2])
		val, _ := strconv.Atoi(fs[3])
		raw = AppendEvent(raw, InputEvent{Time: time.Unix(s, us*1000), Type: uint16(ty), Code: uint16(code), Value: int32(val)})
	}
	return raw
}

// oneByte returns at most one byte per Read, like a slow pipe: the reader
// must reassemble events split across reads.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

func decodeAll(t *testing.T, r io.Reader, layout string) string {
	t.Helper()
	l, err := hidreport.LayoutByName(layout)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(NewTextReader(r, l))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRecordedStreams(t *testing.T) {
	us := loadEvents(t, "us_swipe.events")
	if got := decodeAll(t, bytes.NewReader(us), "us"); got != ";6222021234567890=2512?\r" {
		t.Errorf("us: %q", got)
	}
	if got := decodeAll(t, oneByte{bytes.NewReader(us)}, "us"); got != ";6222021234567890=2512?\r" {
		t.Errorf("us, byte by byte: %q", got)
	}
	de := loadEvents(t, "de_qwertz.events")
	if got := decodeAll(t, bytes.NewReader(de), "de"); got != "Zy-9\r" {
		t.Errorf("de: %q", got)
	}
	if got := decodeAll(t, bytes.NewReader(de), "us"); got != "Yz/9\r" {
		t.Errorf("de recording as us: %q", got)
	}
}

func TestTruncatedStream(t *testing.T) {
	us := loadEvents(t, "us_swipe.events")
	l, _ := hidreport.LayoutByName("us")
	_, err := io.ReadAll(NewTextReader(bytes.NewReader(us[:EventSize*3+5]), l))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated stream: %v", err)
	}
}

func TestRepeatAndAltGr(t *testing.T) {
	var raw []byte
	add := func(code uint16, v int32) { raw = AppendEvent(raw, InputEvent{Type: EvKey, Code: code, Value: v}) }
	add(keyRightAlt, KeyPress)
	add(16, KeyPress) // Q
	add(16, KeyRepeat)
	add(16, KeyRelease)
	add(keyRightAlt, KeyRelease)
	add(59, KeyPress) // F1: no text
	if got := decodeAll(t, bytes.NewReader(raw), "de"); got != "@" {
		t.Errorf("got %q, want @ once (AltGr+Q, repeat ignored)", got)
	}
}

const procDevices = `I: Bus=0019 Vendor=0000 Product=0001 Version=0000
N: Name="Power Button"
P: Phys=LNXPWRBN/button/input0
H: Handlers=kbd event0
B: EV=3

I: Bus=0003 Vendor=0c2e Product=0b61 Version=0111
N: Name="Honeywell Scanner"
P: Phys=usb-0000:00:14.0-2/input0
U: Uniq=17123B4567
H: Handlers=sysrq kbd leds event5
B: EV=120013

I: Bus=0003 Vendor=046d Product=c31c Version=0110
N: Name="Logitech USB Keyboard"
U: Uniq=
H: Handlers=sysrq kbd event3 leds
`

func TestParseAndMatch(t *testing.T) {
	devs, err := ParseDevices(strings.NewReader(procDevices))
	if err != nil || len(devs) != 3 {
		t.Fatalf("%d devices, %v", len(devs), err)
	}
	d, err := Match(devs, "0C2E", "0b61", "")
	if err != nil || d.Path != "/dev/input/event5" || d.Serial != "17123B4567" || d.Name != "Honeywell Scanner" {
		t.Errorf("match: %+v %v", d, err)
	}
	if _, err := Match(devs, "0c2e", "0b61", "other"); err == nil {
		t.Error("wrong serial matched")
	}
	twice := append(devs, InputDevice{Path: "/dev/input/event9", VID: "0c2e", PID: "0b61", Keyboard: true})
	if _, err := Match(twice, "0c2e", "0b61", ""); err == nil || !strings.Contains(err.Error(), "only the reader is grabbed") {
		t.Errorf("ambiguous match not refused: %v", err)
	}
}

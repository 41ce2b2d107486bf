package hiddev_test

import (
	"errors"
	"strings"
	"testing"

	"posagent/devices/decode"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidreport"
	"posagent/devices/hiddev/hidtest"
)

func load(t *testing.T, name string) [][]byte {
	t.Helper()
	return hidtest.MustLoad(t, "testdata/"+name)
}

// readAll drains a reader over a recording (no unplug: stops on the
// ErrUnplugged the replay returns at the end).
func readAll(t *testing.T, name, mode, layout string) []hiddev.Chunk {
	t.Helper()
	var l *hidreport.Layout
	if layout != "" {
		var err error
		if l, err = hidreport.LayoutByName(layout); err != nil {
			t.Fatal(err)
		}
	}
	r, err := hiddev.NewReader(hidtest.NewReplay(load(t, name), true), mode, l)
	if err != nil {
		t.Fatal(err)
	}
	var out []hiddev.Chunk
	for {
		c, err := r.Next()
		if errors.Is(err, hidtest.ErrUnplugged) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, c)
	}
}

func TestPOSContinuation(t *testing.T) {
	cs := readAll(t, "pos_qr_continuation.hex", hiddev.ModePOS, "")
	if len(cs) != 1 || !cs[0].Framed || cs[0].Reports != 3 {
		t.Fatalf("want one label from 3 reports, got %+v", cs)
	}
	rd, err := decode.Barcode(cs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Symbology != "QR" || !strings.HasPrefix(rd.Data, "https://m.example.cn/member?card=MBR-0000123456&sig=") || len(rd.Data) != 132 {
		t.Errorf("reassembled %q (%s, %d bytes)", rd.Data, rd.Symbology, len(rd.Data))
	}
}

func TestPOSCutOffLabelIsDropped(t *testing.T) {
	reps := load(t, "pos_qr_continuation.hex")
	r, _ := hiddev.NewReader(hidtest.NewReplay(reps[:2], true), hiddev.ModePOS, nil)
	if c, err := r.Next(); !errors.Is(err, hidtest.ErrUnplugged) {
		t.Fatalf("half a label was delivered: %q, %v", c.Data, err)
	}
}

func TestMagTek(t *testing.T) {
	cs := readAll(t, "magtek_swipe.hex", hiddev.ModeMSR, "")
	if len(cs) != 1 {
		t.Fatalf("got %d chunks", len(cs))
	}
	rd, err := decode.MSR(cs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if tr, _ := rd.Track(2); tr.Status != "ok" || !strings.HasPrefix(tr.Data, "6222021234567890123=") {
		t.Errorf("track 2 %v", tr)
	}
	if tr, _ := rd.Track(3); tr.Status != "missing" {
		t.Errorf("track 3 %v, want missing", tr)
	}

	cs = readAll(t, "magtek_track2_error.hex", hiddev.ModeMSR, "")
	rd, err = decode.MSR(cs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if tr, _ := rd.Track(2); tr.Status != "error" {
		t.Errorf("track 2 %v, want error", tr)
	}
	if tr, _ := rd.Track(1); tr.Status != "ok" {
		t.Errorf("track 1 %v, want ok", tr)
	}
}

func text(cs []hiddev.Chunk) string {
	var b strings.Builder
	for _, c := range cs {
		b.Write(c.Data)
	}
	return b.String()
}

func TestKeyboardLayouts(t *testing.T) {
	if got := text(readAll(t, "keyboard_us_uid.hex", hiddev.ModeKeyboard, "us")); got != "0A00B1C2D3\r" {
		t.Errorf("us: %q", got)
	}
	if got := text(readAll(t, "keyboard_de_qwertz.hex", hiddev.ModeKeyboard, "de")); got != "Zy-9\r" {
		t.Errorf("de: %q, want Zy-9 (Y/Z swapped, - where US has /)", got)
	}
	// The same reports read with the wrong layout differ: the layout is ours, not the OS's.
	if got := text(readAll(t, "keyboard_de_qwertz.hex", hiddev.ModeKeyboard, "us")); got != "Yz/9\r" {
		t.Errorf("de recording read as us: %q", got)
	}
}

func TestMatchNeverGrabsAnUnconfiguredKeyboard(t *testing.T) {
	devs := []hiddev.DeviceInfo{
		{Path: "1-1:1.0", VID: 0x0c2e, PID: 0x0b61, Serial: "A"},
		{Path: "1-2:1.0", VID: 0x0c2e, PID: 0x0b61, Serial: "B"},
		{Path: "1-3:1.0", VID: 0x046d, PID: 0xc31c}, // the cashier's keyboard
	}
	if _, err := hiddev.Match(devs, "", 0x0c2e, 0x0b61, ""); err == nil || !strings.Contains(err.Error(), "add serial or path") {
		t.Errorf("ambiguous match not refused: %v", err)
	}
	d, err := hiddev.Match(devs, "", 0x0c2e, 0x0b61, "B")
	if err != nil || d.Path != "1-2:1.0" {
		t.Errorf("serial match: %+v %v", d, err)
	}
	if _, err := hiddev.Match(devs, "", 0x1234, 0x5678, ""); err == nil {
		t.Error("absent device matched")
	}
}

func TestBadModeAndReports(t *testing.T) {
	if _, err := hiddev.NewReader(hidtest.NewReplay(nil, true), "joystick", nil); err == nil {
		t.Error("unknown mode accepted")
	}
	r, _ := hiddev.NewReader(hidtest.NewReplay([][]byte{{1, 2, 3}}, true), hiddev.ModePOS, nil)
	_, err := r.Next()
	var re *hiddev.ReportError
	if !errors.As(err, &re) {
		t.Errorf("short report: %v, want a ReportError", err)
	}
}

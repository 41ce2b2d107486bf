package decode

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The byte strings are the frames the PN532 User Manual and reader
// libraries show for these commands.
func TestPN532CommandFrames(t *testing.T) {
	long := bytes.Repeat([]byte{0x01}, 300)
	longFrame, err := PN532Command(0x40, long...)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"wake-up", PN532WakeUp(), "5555 0000000000000000000000000000"},
		{"SAMConfiguration", PN532SAMConfiguration(), "0000FF 05 FB D4 14 01 14 01 02 00"},
		{"InListPassiveTarget", PN532InListPassiveTarget(), "0000FF 04 FC D4 4A 01 00 E1 00"},
		{"ACK", PN532AckFrame(), "0000FF00FF00"},
		{"NACK", PN532NackFrame(), "0000FFFF0000"},
		{"GetFirmwareVersion", must(PN532Command(0x02)), "0000FF 02 FE D4 02 2A 00"},
		{"response", must(PN532Response(0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF)),
			"0000FF 0C F4 D5 4B 01 01 00 04 08 04 DE AD BE EF " + hex.EncodeToString([]byte{dcs(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF)}) + " 00"},
		{"extended header", longFrame[:8], "0000FF FFFF 012E D1"},
	}
	for _, c := range cases {
		if want := unhex(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s: % X, want % X", c.name, c.got, want)
		}
	}
	if len(longFrame) != 3+5+302+2 {
		t.Errorf("extended frame is %d bytes", len(longFrame))
	}
	if _, err := PN532Command(0x40, make([]byte, PN532MaxData)...); !errors.Is(err, ErrFormat) {
		t.Errorf("oversized command: %v, want ErrFormat", err)
	}
	// A caller may modify what it got without changing the next frame.
	w := PN532WakeUp()
	w[0] = 0
	if PN532WakeUp()[0] != 0x55 {
		t.Error("wake-up preamble shared between callers")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func dcs(data ...byte) byte {
	var s byte
	for _, c := range data {
		s += c
	}
	return -s
}

func TestParsePN532Frame(t *testing.T) {
	good := "0000FF 0C F4 D5 4B 01 01 00 04 08 04 DE AD BE EF " + hex.EncodeToString([]byte{dcs(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF)})
	cases := []struct {
		name   string
		in     string
		kind   string
		code   byte
		params string
		err    error
	}{
		{"ack", "0000FF00FF00", PN532Ack, 0, "", nil},
		{"ack from framer", "00FF00FF", PN532Ack, 0, "", nil},
		{"nack", "0000FFFF0000", PN532Nack, 0, "", nil},
		{"SAM response", "0000FF 02 FE D5 15 16 00", PN532Info, 0x15, "", nil},
		{"InList response", good + "00", PN532Info, 0x4B, "010100040804DEADBEEF", nil},
		{"InList response, no postamble", good, PN532Info, 0x4B, "010100040804DEADBEEF", nil},
		{"long preamble", "00000000FF 02 FE D5 15 16", PN532Info, 0x15, "", nil},
		{"error frame", "0000FF01FF7F8100", PN532AppError, 0, "", nil},
		{"extended", "0000FF FFFF 0003 FD D5 15 01 15 00", PN532Info, 0x15, "01", nil},
		{"bad LCS", "0000FF 02 FF D5 15 16 00", "", 0, "", ErrChecksum},
		{"bad DCS", "0000FF 02 FE D5 15 17 00", "", 0, "", ErrChecksum},
		{"bad extended LCS", "0000FF FFFF 0003 FE D5 15 01 15 00", "", 0, "", ErrChecksum},
		{"truncated", "0000FF 0C F4 D5 4B 01", "", 0, "", ErrFormat},
		{"truncated start", "00FF", "", 0, "", ErrFormat},
		{"truncated extended", "0000FF FFFF 00", "", 0, "", ErrFormat},
		{"no start code", "55550000", "", 0, "", ErrFormat},
		{"empty", "", "", 0, "", ErrFormat},
		{"FF without 00", "FF00FF", "", 0, "", ErrFormat},
		{"zero-length extended", "0000FF FFFF 0000 00 00 00", "", 0, "", ErrFormat},
		{"unknown TFI", "0000FF 02 FE D6 14 16 00", "", 0, "", ErrFormat},
		{"TFI only", "0000FF 01 FF D5 2B 00", "", 0, "", ErrFormat},
		{"trailing bytes", "0000FF00FF 00 12", "", 0, "", ErrFormat},
		{"two frames", "0000FF00FF00 0000FF00FF00", "", 0, "", ErrFormat},
	}
	for _, c := range cases {
		f, err := ParsePN532Frame(unhex(t, c.in))
		if c.err != nil {
			var de *Error
			if !errors.Is(err, c.err) || !errors.As(err, &de) || de.Message == "" {
				t.Errorf("%s: %v, want %v as *Error", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if f.Kind != c.kind || f.Code != c.code || hex.EncodeToString(f.Params) != strings.ToLower(c.params) {
			t.Errorf("%s: %+v, want %s code %02X params %s", c.name, f, c.kind, c.code, c.params)
		}
	}
}

// TestPN532RoundTrip: every built frame parses back to what was built, the
// existing decoder reads the UID from a built response, and the commands the
// driver sends parse as host frames.
func TestPN532RoundTrip(t *testing.T) {
	for _, params := range [][]byte{nil, {0x01}, {0x01, 0x00}, bytes.Repeat([]byte{0xAB}, 253), bytes.Repeat([]byte{0xCD}, 254), bytes.Repeat([]byte{0xEF}, 1000)} {
		for _, tfi := range []byte{PN532TFIHost, PN532TFIReply} {
			b, err := pn532Info(tfi, 0x4A, params)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParsePN532Frame(b)
			if err != nil || f.Kind != PN532Info || f.TFI != tfi || f.Code != 0x4A || !bytes.Equal(f.Params, params) {
				t.Errorf("%d params, TFI %02X: %+v %v", len(params), tfi, f, err)
			}
		}
	}
	for name, b := range map[string][]byte{"SAM": PN532SAMConfiguration(), "InList": PN532InListPassiveTarget()} {
		f, err := ParsePN532Frame(b)
		if err != nil || f.TFI != PN532TFIHost {
			t.Errorf("%s: %+v %v", name, f, err)
		}
	}
	resp, _ := PN532Response(PN532ReplyInListPassiveTarget, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66)
	rd, err := PN532(resp)
	if err != nil || rd.Data != "04112233445566" {
		t.Errorf("decoder on a built response: %v %v", rd, err)
	}
}

func FuzzPN532CommandRoundTrip(f *testing.F) {
	f.Add(byte(PN532TFIHost), byte(0x4A), []byte{0x01, 0x00})
	f.Add(byte(PN532TFIReply), byte(0x4B), []byte{0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF})
	f.Add(byte(PN532TFIHost), byte(0x14), bytes.Repeat([]byte{0x00}, 300))
	f.Fuzz(func(t *testing.T, tfiSel, code byte, params []byte) {
		tfi := byte(PN532TFIHost)
		if tfiSel&1 == 1 {
			tfi = PN532TFIReply
		}
		b, err := pn532Info(tfi, code, params)
		if err != nil {
			if 2+len(params) <= PN532MaxData {
				t.Fatalf("build failed: %v", err)
			}
			return
		}
		fr, err := ParsePN532Frame(b)
		if err != nil || fr.Kind != PN532Info || fr.TFI != tfi || fr.Code != code || !bytes.Equal(fr.Params, params) {
			t.Fatalf("round trip: %+v %v", fr, err)
		}
		// Any single corrupted byte after the start code is caught (checked
		// on a bounded number of positions: the loop is quadratic).
		for i := 3; i < len(b)-1 && i < 300; i++ {
			c := append([]byte(nil), b...)
			c[i] ^= 0x01
			if g, err := ParsePN532Frame(c); err == nil && g.Kind == PN532Info && g.Code == code && bytes.Equal(g.Params, params) && g.TFI == tfi {
				t.Fatalf("corrupted byte %d not detected", i)
			}
		}
	})
}

func FuzzParsePN532Frame(f *testing.F) {
	f.Add(PN532AckFrame())
	f.Add(PN532NackFrame())
	f.Add(PN532SAMConfiguration())
	f.Add([]byte{0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x03, 0xFD, 0xD5, 0x15, 0x01, 0x15, 0x00})
	f.Add([]byte{0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := ParsePN532Frame(in)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *decode.Error", err)
			}
			return
		}
		switch fr.Kind {
		case PN532Ack, PN532Nack, PN532AppError:
		case PN532Info:
			// The canonical rebuild parses to the same frame.
			b, err := pn532Info(fr.TFI, fr.Code, fr.Params)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ParsePN532Frame(b)
			if err != nil || g.TFI != fr.TFI || g.Code != fr.Code || !bytes.Equal(g.Params, fr.Params) {
				t.Fatalf("rebuild: %+v %v", g, err)
			}
		default:
			t.Fatalf("kind %q", fr.Kind)
		}
	})
}

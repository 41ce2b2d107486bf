package decode

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const pan = "4111111111111111"

func swipe(lrc bool, tracks ...string) []byte {
	var b strings.Builder
	for _, t := range tracks {
		b.WriteString(t)
		if lrc && len(t) > 2 {
			n := map[byte]int{'%': 1, ';': 2, '+': 3}[t[0]]
			b.WriteByte(LRC(n, t[1:len(t)-1]))
		}
	}
	b.WriteString("\r")
	return []byte(b.String())
}

func statuses(r Read) string {
	var s []string
	for _, t := range r.Tracks {
		s = append(s, fmt.Sprintf("%d:%s", t.N, t.Status))
	}
	return strings.Join(s, " ")
}

func TestMSR(t *testing.T) {
	t1 := "%B" + pan + "^DOE/JOHN^2512101000000000000?"
	t2 := ";" + pan + "=25121010000000000000?"
	t3 := "+011234567890123456=724724100000000000030300?"
	for _, tc := range []struct {
		name    string
		in      []byte
		dec     func([]byte) (Read, error)
		want    string
		wantErr error
	}{
		{"three tracks", swipe(false, t1, t2, t3), MSR, "1:ok 2:ok 3:ok", nil},
		{"track 2 only", swipe(false, t2), MSR, "1:missing 2:ok 3:missing", nil},
		{"tracks on lines", []byte(t1 + "\r\n" + t2 + "\r\n"), MSR, "1:ok 2:ok 3:missing", nil},
		{"error tracks", swipe(false, "%E?", t2, "+E?"), MSR, "1:error 2:ok 3:error", nil},
		{"all error", swipe(false, "%E?", ";E?", "+E?"), MSR, "1:error 2:error 3:error", ErrBadRead},
		{"semicolon track 3", swipe(false, t2, ";0112345678?"), MSR, "1:missing 2:ok 3:ok", nil},
		{"lrc good", swipe(true, t1, t2), MSRWith(MSROptions{LRC: true}), "1:ok 2:ok 3:missing", nil},
		{"lrc auto", swipe(true, t2), MSR, "1:missing 2:ok 3:missing", nil},
		// Track 1's LRC here is '+', which only msr:lrc can tell from a
		// track 3 start sentinel.
		{"lrc auto ambiguous", swipe(true, t1, t2), MSR, "1:ok 2:ok 3:error", nil},
		{"lrc bad", []byte(t1 + "!" + t2 + "0\r"), MSRWith(MSROptions{LRC: true}), "1:lrc 2:lrc 3:missing", ErrBadRead},
		{"lrc missing", swipe(false, t2), MSRWith(MSROptions{LRC: true}), "1:missing 2:lrc 3:missing", ErrBadRead},
		{"bad charset track 2", swipe(false, ";41111A1111=2512?"), MSR, "1:missing 2:error 3:missing", ErrBadRead},
		{"truncated track", []byte(t1 + ";41111111"), MSR, "1:ok 2:error 3:missing", nil},
		{"empty track", swipe(false, "%?", t2), MSR, "1:missing 2:ok 3:missing", nil},
		{"duplicate track", swipe(false, t1, "%B12?"), MSR, "1:error 2:missing 3:missing", ErrBadRead},
		{"too long track 2", swipe(false, ";"+strings.Repeat("1", 38)+"?"), MSR, "1:missing 2:error 3:missing", ErrBadRead},
		{"stx etx", append(append([]byte{2}, swipe(false, t2)...), 3), MSR, "1:missing 2:ok 3:missing", nil},
		{"empty", []byte("\r\n"), MSR, "", ErrNoData},
		{"garbage", []byte("hello"), MSR, "", ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.dec(tc.in)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if got := statuses(r); got != tc.want {
				t.Fatalf("tracks %q, want %q", got, tc.want)
			}
			for _, tr := range r.Tracks {
				if tr.Status != StatusOK && tr.Data != "" {
					t.Fatalf("track %d is %s but has data", tr.N, tr.Status)
				}
			}
		})
	}
	r, err := MSR(swipe(false, t1, t2))
	if err != nil || r.Data != t2[1:len(t2)-1] {
		t.Fatalf("Data %q err %v", r.Data, err)
	}
	if tr, _ := r.Track(1); tr.Data != t1[1:len(t1)-1] {
		t.Fatalf("track 1 %q", tr.Data)
	}
	p, err := Track2PAN(r.Data)
	if err != nil || p != pan {
		t.Fatalf("PAN %q %v", p, err)
	}
	if _, err := Track2PAN("12=34"); !errors.Is(err, ErrRule) {
		t.Fatalf("short PAN accepted: %v", err)
	}
}

func TestReadNeverLogsCardData(t *testing.T) {
	r, err := MSR(swipe(false, "%B"+pan+"^DOE/JOHN^2512101?", ";"+pan+"=2512101?"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("read", "read", r, "tracks", r.Tracks, "t2", r.Tracks[1])
	log2 := slog.New(slog.NewJSONHandler(&buf, nil))
	log2.Info("read", "read", r, "t2", r.Tracks[1])
	fmt.Fprintf(&buf, "%v %+v %s %v %#v %#v", r, r, r, r.Tracks, r, r.Tracks)
	out := buf.String()
	for _, secret := range []string{pan, "DOE/JOHN", "2512101"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "411111*") {
		t.Fatalf("log lacks the masked number:\n%s", out)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"1234":                "****",
		"12345":               "*2345",
		"6222021234567891234": "622202*********1234",
		"123456789012":        "********9012",
		"1234567890123":       "123456***0123",
		"ab\ncdefghijklm\x1b": "ab.cde*****klm.",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEM4100(t *testing.T) {
	good := []byte("\x020F00C6A5E4\x03")
	// checksum: 0F^00^C6^A5^E4
	x := byte(0x0F ^ 0x00 ^ 0xC6 ^ 0xA5 ^ 0xE4)
	good = []byte(fmt.Sprintf("\x020F00C6A5E4%02X\x03", x))
	r, err := EM4100(good)
	if err != nil || r.Data != "0F00C6A5E4" || r.Kind != "rfid" || len(r.UID) != 5 {
		t.Fatalf("%v %v", r, err)
	}
	if r2, err := EM4100(good[1 : len(good)-1]); err != nil || r2.Data != r.Data {
		t.Fatalf("stripped frame: %v %v", r2, err)
	}
	bad := append([]byte(nil), good...)
	bad[11] ^= 1
	if _, err := EM4100(bad); !errors.Is(err, ErrChecksum) {
		t.Fatalf("bad checksum: %v", err)
	}
	for _, in := range []string{"\x02\x03", "\x020F00C6A5E4\x03", "\x020F00C6A5EXZZ\x03"} {
		if _, err := EM4100([]byte(in)); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

func TestParallax(t *testing.T) {
	r, err := Parallax([]byte("\n0415ED6F2A\r"))
	if err != nil || r.Data != "0415ED6F2A" {
		t.Fatalf("%v %v", r, err)
	}
	for _, in := range []string{"\n\r", "\n0415ED6F2\r", "\n0415ED6F2G\r"} {
		if _, err := Parallax([]byte(in)); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

// pnFrame builds a normal PN532 frame with preamble and postamble.
func pnFrame(data ...byte) []byte {
	var sum byte
	for _, c := range data {
		sum += c
	}
	f := []byte{0x00, 0x00, 0xFF, byte(len(data)), -byte(len(data))}
	f = append(f, data...)
	return append(f, -sum, 0x00)
}

var (
	pnACK  = []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}
	pnNACK = []byte{0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00}
)

func TestPN532(t *testing.T) {
	card4 := pnFrame(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF)
	card7 := pnFrame(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x44, 0x00, 0x07, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66)
	r, err := PN532(append(append([]byte{}, pnACK...), card4...))
	if err != nil || r.Data != "DEADBEEF" {
		t.Fatalf("%v %v", r, err)
	}
	if r, err := PN532(card7); err != nil || r.Data != "04112233445566" {
		t.Fatalf("%v %v", r, err)
	}
	badDCS := append([]byte(nil), card4...)
	badDCS[len(badDCS)-2]++
	badLCS := append([]byte(nil), card4...)
	badLCS[4]++
	noCard := pnFrame(0xD5, 0x4B, 0x00)
	firmware := pnFrame(0xD5, 0x03, 0x32, 0x01, 0x06, 0x07)
	badLen := pnFrame(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x05, 0xDE, 0xAD, 0xBE, 0xEF, 0x01)
	appErr := pnFrame(0x7F)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"ack", pnACK, ErrNoData},
		{"nack", pnNACK, ErrNACK},
		{"bad data checksum", badDCS, ErrChecksum},
		{"bad length checksum", badLCS, ErrChecksum},
		{"no card", noCard, ErrNoData},
		{"firmware response", firmware, ErrNoData},
		{"bad uid length", badLen, ErrFormat},
		{"application error", appErr, ErrFormat},
		{"truncated", card4[:10], ErrFormat},
		{"noise", []byte("hello"), ErrFormat},
	} {
		if _, err := PN532(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestUIDFormatsAsReaderManuals: the numbers reader manuals and
// access-control systems print for EM4100 card 0A00B1C2D3.
func TestUIDFormatsAsReaderManuals(t *testing.T) {
	uid := []byte{0x0A, 0x00, 0xB1, 0xC2, 0xD3}
	for f, want := range map[string]string{
		UIDHex:      "0A00B1C2D3",
		UIDHexRev:   "D3C2B1000A",
		UID8H10D:    "0011649747",    // 00B1C2D3: the low 32 bits
		UIDDec10:    "0011649747",    // the same number under its earlier name
		UID8H10DRev: "3266379786",    // C2B1000A: 8H10D of the reversed bytes
		UID10H13D:   "0042961322707", // 0A00B1C2D3: all 40 bits
		UID6H8D:     "17749875",      // B1 = 177, C2D3 = 49875
		UIDW26:      "177,49875",
	} {
		got, err := FormatUID(uid, f)
		if err != nil || got != want {
			t.Errorf("FormatUID %s = %q %v, want %q", f, got, err, want)
		}
	}
}

func TestWedgeUIDAndFormat(t *testing.T) {
	uid := []byte{0x0F, 0x00, 0xC6, 0xA5, 0xE4}
	want := map[string]string{
		UIDHex:      "0F00C6A5E4",
		UIDHexRev:   "E4A5C6000F",
		UIDDec10:    "0013018596",
		UID8H10D:    "0013018596",
		UID8H10DRev: "2781216783",
		UID10H13D:   "0064437528036",
		UID6H8D:     "19842468",
		UIDW26:      "198,42468",
	}
	for f, s := range want {
		got, err := FormatUID(uid, f)
		if err != nil || got != s {
			t.Errorf("FormatUID %s = %q %v, want %q", f, got, err, s)
		}
		r, err := WedgeUID(s, f)
		if err != nil {
			t.Fatalf("WedgeUID(%q, %s): %v", s, f, err)
		}
		back, _ := FormatUID(r.UID, f)
		if back != s {
			t.Errorf("%s round trip %q -> %q", f, s, back)
		}
	}
	if r, _ := WedgeUID("123,456", UIDW26); !bytes.Equal(r.UID, []byte{123, 0x01, 0xC8}) {
		t.Fatalf("w26 unpadded: % X", r.UID)
	}
	for _, tc := range [][2]string{{"0F00C6A5E", UIDHex}, {"zz00C6A5E4", UIDHex}, {"4294967296", UIDDec10},
		{"123456789", UIDDec10}, {"4294967296", UID8H10D}, {"4294967296", UID8H10DRev}, {"1099511627776", UID10H13D},
		{"064437528036", UID10H13D}, {"25600001", UID6H8D}, {"00165536", UID6H8D}, {"1984246", UID6H8D},
		{"256,1", UIDW26}, {"1,65536", UIDW26}, {"12345", UIDW26}, {"1,2", "octal"}} {
		if _, err := WedgeUID(tc[0], tc[1]); err == nil {
			t.Errorf("WedgeUID(%q, %s) accepted", tc[0], tc[1])
		}
	}
	if _, err := FormatUID([]byte{1, 2}, UIDDec10); err == nil {
		t.Error("dec10 of 2 bytes accepted")
	}
}

func TestBarcode(t *testing.T) {
	for _, tc := range []struct {
		in, data, sym, aim string
		err                error
	}{
		{"]E04006381333931\r", "4006381333931", "EAN-13", "]E0", nil},
		{"]E04006381333932", "", "", "", ErrChecksum},
		{"]E440063813", "", "", "", ErrChecksum},
		{"]E496385074", "96385074", "EAN-8", "]E4", nil},
		{"]C1\x1d0104006381333931\x1d21ABC", "\x1d0104006381333931\x1d21ABC", "GS1-128", "]C1", nil},
		{"]Q1M:12345678", "M:12345678", "QR", "]Q1", nil},
		{"]A0MEMBER42", "MEMBER42", "Code 39", "]A0", nil},
		{"]d2010400638133393121X", "010400638133393121X", "GS1 DataMatrix", "]d2", nil},
		{"]W9odd", "odd", "AIM ]W9", "]W9", nil},
		{"M:12345678\r\n", "M:12345678", "", "", nil},
		{"]E0", "", "", "", ErrFormat},
		{"\r", "", "", "", ErrNoData},
		{"bad\x07bell", "", "", "", ErrFormat},
		{"\xff\xfe", "", "", "", ErrFormat},
	} {
		r, err := Barcode([]byte(tc.in))
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%q: err %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && (r.Data != tc.data || r.Symbology != tc.sym || r.AIM != tc.aim || r.Kind != "barcode") {
			t.Errorf("%q: %+v", tc.in, r)
		}
	}
}

func TestLuhn(t *testing.T) {
	for s, ok := range map[string]bool{pan: true, "4111111111111112": false, "79927398713": true, "": false, "0": false, "12a4": false} {
		if Luhn(s) != ok {
			t.Errorf("Luhn(%q) != %v", s, ok)
		}
	}
}

func TestByName(t *testing.T) {
	for _, n := range []string{"msr", "msr:lrc", "em4100", "parallax", "pn532", "barcode", "uid:hex", "uid:w26", "UID:8H10D"} {
		if d, err := ByName(n); err != nil || d == nil {
			t.Errorf("ByName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "msr:x", "uid", "uid:oct", "qr"} {
		if _, err := ByName(n); err == nil {
			t.Errorf("ByName(%q) accepted", n)
		}
	}
	d, _ := ByName("uid:w26")
	if r, err := d([]byte("123,45678")); err != nil || r.Data != "7BB26E" {
		t.Fatalf("%v %v", r, err)
	}
}

func TestErrorCarriesCodeAndHint(t *testing.T) {
	_, err := EM4100([]byte("\x020F00C6A5E400\x03"))
	var de *Error
	if !errors.As(err, &de) || de.Code != "checksum" || de.Hint == "" || strings.Contains(err.Error(), "0F00C6") {
		t.Fatalf("%#v", err)
	}
}

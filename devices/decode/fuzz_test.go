package decode

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkRead holds for every successful decode: a kind, and no card data in
// the masked String of long payloads.
func checkRead(t *testing.T, r Read) {
	t.Helper()
	if r.Kind == "" {
		t.Fatal("read without kind")
	}
	rs := []rune(r.Data)
	if n := len(rs); n >= 13 && strings.Trim(string(rs[6:n-4]), "*") != "" && strings.Contains(r.String(), r.Data) {
		t.Fatalf("String leaks data")
	}
}

func FuzzMSR(f *testing.F) {
	f.Add([]byte("%B4111111111111111^DOE/JOHN^2512101?;4111111111111111=2512101?+0112?\r"), false)
	f.Add([]byte("%E?;E?+E?"), false)
	f.Add([]byte(";4111111111111111=25121010000000000000?8\r"), true)
	f.Add([]byte(";123?;456?"), false)
	f.Fuzz(func(t *testing.T, in []byte, lrc bool) {
		r, err := MSRWith(MSROptions{LRC: lrc})(in)
		if err != nil {
			return
		}
		checkRead(t, r)
		ok := false
		for _, tr := range r.Tracks {
			if tr.Status != StatusOK {
				if tr.Data != "" {
					t.Fatalf("track %d %s with data", tr.N, tr.Status)
				}
				continue
			}
			ok = true
			sp := trackSpecs[tr.N]
			if len(tr.Data) == 0 || len(tr.Data) > sp.maxData {
				t.Fatalf("track %d ok with %d chars", tr.N, len(tr.Data))
			}
			for i := 0; i < len(tr.Data); i++ {
				if c := tr.Data[i]; c < sp.lo || c > sp.hi || strings.IndexByte(sp.sentinels, c) >= 0 {
					t.Fatalf("track %d ok with char %q", tr.N, c)
				}
			}
		}
		if !ok {
			t.Fatal("nil error without a good track")
		}
	})
}

func FuzzEM4100(f *testing.F) {
	f.Add([]byte("\x020F00C6A5E48C\x03"))
	f.Add([]byte("0F00C6A5E48C"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := EM4100(in)
		if err != nil {
			return
		}
		checkRead(t, r)
		if len(r.UID) != 5 {
			t.Fatalf("UID % X", r.UID)
		}
		var x byte
		for _, c := range r.UID {
			x ^= c
		}
		want := hex.EncodeToString(append(append([]byte(nil), r.UID...), x))
		if !bytes.Contains(bytes.ToLower(in), []byte(want)) {
			t.Fatalf("accepted %q without a valid checksum", in)
		}
	})
}

func FuzzParallax(f *testing.F) {
	f.Add([]byte("\n0415ED6F2A\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Parallax(in)
		if err != nil {
			return
		}
		checkRead(t, r)
		if len(r.UID) != 5 || !bytes.Contains(bytes.ToUpper(in), []byte(r.Data)) {
			t.Fatalf("%q -> %v", in, r)
		}
	})
}

func FuzzPN532(f *testing.F) {
	f.Add(append(append([]byte{}, pnACK...), pnFrame(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF)...))
	f.Add(pnNACK)
	f.Add(pnFrame(0xD5, 0x4B, 0x00))
	f.Add([]byte{0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x03, 0xFD, 0xD5, 0x4B, 0x00, 0xE0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := PN532(in)
		if err != nil {
			return
		}
		checkRead(t, r)
		if n := len(r.UID); n != 4 && n != 7 && n != 10 {
			t.Fatalf("UID of %d bytes", n)
		}
		if !bytes.Contains(in, r.UID) {
			t.Fatal("UID not in input")
		}
	})
}

func FuzzBarcode(f *testing.F) {
	f.Add([]byte("]E04006381333931\r"))
	f.Add([]byte("]C1\x1d0104006381333931"))
	f.Add([]byte("M:12345678"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Barcode(in)
		if err != nil {
			return
		}
		checkRead(t, r)
		if r.Data == "" || !utf8.ValidString(r.Data) || strings.ContainsAny(r.Data, "\r\n\x00") {
			t.Fatalf("bad data %q", r.Data)
		}
		if r.AIM == "]E0" && (len(r.Data) != 13 || !gtinCheck(r.Data)) {
			t.Fatalf("EAN-13 %q accepted", r.Data)
		}
	})
}

func FuzzWedgeUID(f *testing.F) {
	f.Add("0F00C6A5E4", uint8(0))
	f.Add("0013018596", uint8(2))
	f.Add("198,42468", uint8(6))
	f.Add("0042961322707", uint8(4))
	f.Add("17749875", uint8(5))
	f.Add("3266379786", uint8(3))
	f.Fuzz(func(t *testing.T, s string, fi uint8) {
		format := UIDFormats[int(fi)%len(UIDFormats)]
		r, err := WedgeUID(s, format)
		if err != nil {
			return
		}
		checkRead(t, r)
		// The canonical rendering parses back to the same UID.
		out, err := FormatUID(r.UID, format)
		if err != nil {
			t.Fatalf("FormatUID(% X, %s): %v", r.UID, format, err)
		}
		r2, err := WedgeUID(out, format)
		if err != nil || !bytes.Equal(r2.UID, r.UID) {
			t.Fatalf("%q -> % X -> %q -> % X %v", s, r.UID, out, r2.UID, err)
		}
	})
}

func FuzzMask(f *testing.F) {
	f.Add("6222021234567891234")
	f.Fuzz(func(t *testing.T, s string) {
		m := Mask(s)
		if utf8.RuneCountInString(m) != utf8.RuneCountInString(s) {
			t.Fatalf("Mask changed length: %q -> %q", s, m)
		}
		rs := []rune(m)
		if n := len(rs); n >= 13 && rs[6] != '*' || n >= 5 && n < 13 && rs[0] != '*' {
			t.Fatalf("Mask(%q) = %q hides too little", s, m)
		}
		if strings.ContainsAny(m, "\r\n") {
			t.Fatalf("Mask kept a line break")
		}
	})
}

package token

import (
	"errors"
	"strings"
	"testing"

	"posagent/devices/decode"
)

const pan = "6222021234567890128" // Luhn-valid

func msr(t *testing.T, in string) decode.Read {
	t.Helper()
	r, err := decode.MSR([]byte(in))
	if err != nil && !errors.Is(err, decode.ErrBadRead) {
		t.Fatal(err)
	}
	return r
}

func TestTrack2PAN(t *testing.T) {
	good := msr(t, "%B"+pan+"^LI/LEI^3012?;"+pan+"=3012101?\r")
	rule := Rule{Source: SourceTrack2PAN, Prefix: "6222,6223", Luhn: true}
	tok, err := rule.Token(good)
	if err != nil || tok != pan {
		t.Fatalf("%q %v", tok, err)
	}
	for name, tc := range map[string]struct {
		r    decode.Read
		rule Rule
	}{
		"track 2 error":   {msr(t, "%B"+pan+"^LI/LEI^3012?;E?"), rule},
		"track 2 missing": {msr(t, "%B"+pan+"^LI/LEI^3012?"), rule},
		"prefix":          {good, Rule{Source: SourceTrack2PAN, Prefix: "4"}},
		"luhn":            {msr(t, ";6222021234567890127=3012?"), rule},
		"barcode":         {decode.Read{Kind: "barcode", Data: pan}, rule},
		"short pan":       {msr(t, ";12345=3012?"), Rule{Source: SourceTrack2PAN}},
	} {
		_, err := tc.rule.Token(tc.r)
		var de *decode.Error
		if !errors.As(err, &de) || !errors.Is(err, decode.ErrRule) || de.Hint == "" {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "62220212") {
			t.Errorf("%s: error leaks the card number: %v", name, err)
		}
	}
}

func TestBarcodeRegex(t *testing.T) {
	r, err := decode.Barcode([]byte("]Q1https://m.example.cn/c/M00012345?x=1"))
	if err != nil {
		t.Fatal(err)
	}
	rule := Rule{Source: SourceBarcodeRegex, Regex: `/c/(M\d{8})\b`, Group: 1, Prefix: "M"}
	if tok, err := rule.Token(r); err != nil || tok != "M00012345" {
		t.Fatalf("%q %v", tok, err)
	}
	if tok, err := (Rule{Source: SourceBarcodeRegex}).Token(r); err != nil || tok != r.Data {
		t.Fatalf("whole text: %q %v", tok, err)
	}
	other, _ := decode.Barcode([]byte("]E04006381333931"))
	if _, err := rule.Token(other); !errors.Is(err, decode.ErrRule) {
		t.Fatalf("non-member code: %v", err)
	}
	if _, err := (Rule{Source: SourceBarcodeRegex, Regex: `(\d+)`, Group: 1, Luhn: true}).Token(other); !errors.Is(err, decode.ErrRule) {
		t.Fatalf("luhn on EAN: %v", err)
	}
}

func TestUID(t *testing.T) {
	r := decode.Read{Kind: "rfid", UID: []byte{0x0F, 0x00, 0xC6, 0xA5, 0xE4}}
	for f, want := range map[string]string{"": "0F00C6A5E4", "hex_rev": "E4A5C6000F", "dec10": "0013018596", "w26": "198,42468"} {
		if tok, err := (Rule{Source: SourceUID, UIDFormat: f}).Token(r); err != nil || tok != want {
			t.Errorf("%s: %q %v", f, tok, err)
		}
	}
	// A wedge reader typing dec10 gives the same token as a serial reader.
	w, err := decode.WedgeUID("0013018596", "dec10")
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := (Rule{Source: SourceUID, UIDFormat: "dec10"}).Token(w); tok != "0013018596" {
		t.Fatalf("wedge token %q", tok)
	}
	// 8H10D as reader manuals mean it: a serial EM4100 reader and a wedge
	// typing 8H10D give the same token for card 0A00B1C2D3.
	em, err := decode.EM4100([]byte("\x020A00B1C2D3AA\x03"))
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := (Rule{Source: SourceUID, UIDFormat: "8h10d"}).Token(em); err != nil || tok != "0011649747" {
		t.Fatalf("serial 8h10d token %q %v, want 0011649747", tok, err)
	}
	w, err = decode.WedgeUID("0011649747", "8h10d")
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := (Rule{Source: SourceUID, UIDFormat: "8h10d"}).Token(w); tok != "0011649747" {
		t.Fatalf("wedge 8h10d token %q", tok)
	}
	if _, err := (Rule{Source: SourceUID}).Token(decode.Read{Kind: "barcode", Data: "x"}); !errors.Is(err, decode.ErrRule) {
		t.Fatalf("%v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []Rule{{}, {Source: "x"}, {Source: SourceBarcodeRegex, Regex: "("}, {Source: SourceBarcodeRegex, Regex: "a", Group: 1},
		{Source: SourceUID, UIDFormat: "oct"}} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
		if _, err := r.Token(decode.Read{Kind: "barcode", Data: "a"}); err == nil {
			t.Errorf("%+v gave a token", r)
		}
	}
}

func TestHashAndMask(t *testing.T) {
	// RFC 4231 test case 2.
	if got := Hash([]byte("Jefe"), "what do ya want for nothing?"); got != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Fatalf("Hash = %s", got)
	}
	if Hash([]byte("k1"), pan) == Hash([]byte("k2"), pan) {
		t.Fatal("hash ignores the key")
	}
	if got := Mask(pan); got != "622202*********0128" {
		t.Fatalf("Mask = %s", got)
	}
}

func FuzzTrack2Rule(f *testing.F) {
	f.Add([]byte(";6222021234567890128=3012?"))
	f.Add([]byte("%B6222021234567890128^A/B^3012?;6222021234567890128=3012?"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decode.MSR(in)
		if err != nil {
			return
		}
		tok, err := Rule{Source: SourceTrack2PAN, Luhn: true, Prefix: "62"}.Token(r)
		if err != nil {
			return
		}
		if !decode.Luhn(tok) || !strings.HasPrefix(tok, "62") || len(tok) < 6 || len(tok) > 19 {
			t.Fatalf("token %q from garbage", tok)
		}
	})
}

func FuzzBarcodeRule(f *testing.F) {
	f.Add([]byte("]Q1https://m.example.cn/c/M00012345"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decode.Barcode(in)
		if err != nil {
			return
		}
		tok, err := Rule{Source: SourceBarcodeRegex, Regex: `M(\d{8})`, Group: 1}.Token(r)
		if err != nil {
			return
		}
		if len(tok) != 8 || strings.Trim(tok, "0123456789") != "" {
			t.Fatalf("token %q", tok)
		}
	})
}

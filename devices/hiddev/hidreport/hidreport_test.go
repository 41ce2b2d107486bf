package hidreport

import (
	"bytes"
	"errors"
	"testing"
)

func TestPOSEncodeRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 20)
	var p POS
	var got *Label
	reps := EncodePOS("]Q1", data)
	if len(reps) != 4 {
		t.Fatalf("%d reports for 200 bytes, want 4", len(reps))
	}
	for i, r := range reps {
		l, err := p.Push(r)
		if err != nil {
			t.Fatal(err)
		}
		if (l != nil) != (i == len(reps)-1) {
			t.Fatalf("label after report %d: %v", i, l)
		}
		got = l
	}
	if !bytes.Equal(got.Data, data) || got.Symbology != "]Q1" || got.Reports != 4 {
		t.Errorf("got %+v", got)
	}
	// Without report ID (63 bytes) and with a non-AIM symbology.
	r := EncodePOS("", []byte("ABC"))[0][1:]
	r[1], r[2], r[3] = 0x0D, 0, 0
	l, err := p.Push(r)
	if err != nil || string(l.Data) != "ABC" || l.Symbology != "0x0D0000" {
		t.Errorf("no-ID report: %+v %v", l, err)
	}
}

func TestPOSBounds(t *testing.T) {
	var p POS
	r := EncodePOS("", []byte("x"))[0]
	r[1] = 57
	if _, err := p.Push(r); err == nil {
		t.Error("length 57 accepted")
	}
	r = EncodePOS("", bytes.Repeat([]byte("x"), 56))[0]
	r[63] = 1
	var err error
	for i := 0; i < MaxLabel/56+2 && err == nil; i++ {
		_, err = p.Push(r)
	}
	if !errors.Is(err, ErrLabelTooLong) {
		t.Errorf("endless continuation: %v", err)
	}
	if p.Pending() {
		t.Error("buffer kept after overflow")
	}
	other := make([]byte, 64)
	other[0] = 0x04
	if l, err := p.Push(other); l != nil || err != nil {
		t.Error("report with another ID not ignored")
	}
}

func TestMagTekBounds(t *testing.T) {
	r := make([]byte, MagTekReportLen)
	r[4] = 111
	if _, err := ParseMagTek(r); err == nil {
		t.Error("overlong track accepted")
	}
	if _, err := ParseMagTek(r[:10]); err == nil {
		t.Error("short report accepted")
	}
	s := "6222021234567890=2512?"
	tr, err := ParseMagTek(append([]byte{0x01}, EncodeMagTek([3]*string{new(string), &s, new(string)})...))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(MagTekFrame(tr)); got != ";6222021234567890=2512?" {
		t.Errorf("frame %q (sentinel added, empty tracks omitted)", got)
	}
}

func TestKeyboard(t *testing.T) {
	us, _ := LayoutByName("")
	de, _ := LayoutByName("DE")
	if _, err := LayoutByName("fr"); err == nil {
		t.Error("unknown layout accepted")
	}
	k := NewKeyboard(de)
	steps := []struct {
		rep  []byte
		want string
	}{
		{[]byte{ModRightAlt, 0, 0x14, 0, 0, 0, 0, 0}, "@"}, // AltGr+Q on German
		{[]byte{ModRightAlt, 0, 0x14, 0, 0, 0, 0, 0}, ""},  // held, no repeat
		{[]byte{0, 0, 0x14, 0x1E, 0, 0, 0, 0}, "1"},        // rollover: only the new key
		{[]byte{0, 0, 1, 1, 1, 1, 1, 1}, ""},               // phantom state ignored
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0}, ""},
		{[]byte{ModLeftShift, 0, 0x1F, 0, 0, 0, 0, 0}, "\""},
		{[]byte{0x01, 0, 0, 0, 0, 0, 0, 0, 0}, ""}, // 9 bytes: report ID skipped
	}
	for i, s := range steps {
		got, err := k.Push(s.rep)
		if err != nil || got != s.want {
			t.Errorf("step %d: %q %v, want %q", i, got, err, s.want)
		}
	}
	if _, err := k.Push([]byte{1, 2}); err == nil {
		t.Error("short report accepted")
	}
	if r, _ := us.Char(0x1F, true, false); r != '@' {
		t.Errorf("us shift-2 = %q", r)
	}
	// Every shifted digit row key, 1..9 then 0, on both layouts.
	for _, c := range []struct {
		l    *Layout
		want string
	}{{us, "!@#$%^&*()"}, {de, "!\"§$%&/()="}} {
		var got []rune
		for u := byte(0x1E); u <= 0x27; u++ {
			r, _ := c.l.Char(u, true, false)
			got = append(got, r)
		}
		if string(got) != c.want {
			t.Errorf("%s shifted digits = %q, want %q", c.l.Name, string(got), c.want)
		}
	}
	k = NewKeyboard(us)
	k.Push([]byte{0, 0, 0x3A, 0, 0, 0, 0, 0}) // F1: no character
	if k.Unmapped != 1 {
		t.Errorf("unmapped %d", k.Unmapped)
	}
}

func FuzzParsers(f *testing.F) {
	f.Add(EncodePOS("]E0", []byte("4006381333931"))[0])
	f.Add(EncodeMagTek([3]*string{nil, nil, nil}))
	f.Add([]byte{2, 0, 4, 0, 0, 0, 0, 0})
	us, _ := LayoutByName("us")
	f.Fuzz(func(t *testing.T, b []byte) {
		var p POS
		p.Push(b)
		if tr, err := ParseMagTek(b); err == nil {
			MagTekFrame(tr)
		}
		NewKeyboard(us).Push(b)
	})
}

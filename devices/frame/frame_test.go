package frame

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func mustNew(t *testing.T, c Config) Framer {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func strs(fs [][]byte) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

func eq(t *testing.T, got [][]byte, want ...string) {
	t.Helper()
	g := strs(got)
	if len(g) != len(want) {
		t.Fatalf("frames %q, want %q", g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("frames %q, want %q", g, want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Kind: "nope"},
		{Kind: "terminator", Terminator: "NUL"},
		{Kind: "idle_gap"},
		{Kind: "fixed"},
		{Kind: "fixed", Length: 10, MaxFrame: 5},
		{Kind: "stx_etx", MaxFrame: -1},
		{Kind: "stx_etx", Gap: -time.Second},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestTerminator(t *testing.T) {
	for _, tc := range []struct {
		term, in string
		want     []string
	}{
		{"CR", "abc\rdef\r\rgh", []string{"abc", "def"}},
		{"LF", "abc\ndef\n", []string{"abc", "def"}},
		{"CRLF", "abc\r\nd\ref\r\n\r\n", []string{"abc", "d\ref"}},
		{"crlf", "x\r", nil},
		{"CR", "\nab\ncd\r\n\n\r\ref\n\r", []string{"ab\ncd", "ef"}},
		{"LFCR", "\n\rab\n\rcd\n", []string{"ab", "cd"}},
		{"TAB", "ab\tcd\r\n\t\nef\r\t", []string{"ab", "cd", "ef"}},
		{"ANY", "ab\tcd\r\n\tef\n\rg\r", []string{"ab", "cd", "ef", "g"}},
		{"CR", "ab\tcd\r", []string{"ab\tcd"}},
	} {
		f := mustNew(t, Config{Kind: "terminator", Terminator: tc.term})
		var got [][]byte
		// Byte by byte: framing must not depend on chunking.
		for i := 0; i < len(tc.in); i++ {
			got = append(got, f.Push([]byte{tc.in[i]}, ms(i))...)
		}
		eq(t, got, tc.want...)
		f2 := mustNew(t, Config{Kind: "terminator", Terminator: tc.term})
		eq(t, f2.Push([]byte(tc.in), t0), tc.want...)
	}
}

// TestTerminatorSuffixes: scanners end a scan with CR, LF, CR LF, LF CR or
// TAB. Each setting reads its byte alone or paired with the other line
// byte, and ANY reads them all, indefinitely: whole, byte by byte, and with
// the two bytes of a pair in separate reads and a delay between them. A
// stray CR or LF never starts a frame.
func TestTerminatorSuffixes(t *testing.T) {
	scans := []string{"M00012345", "4006381333931", "M00099999"}
	suffixes := map[string]string{"CR": "\r", "LF": "\n", "CRLF": "\r\n", "LFCR": "\n\r", "TAB": "\t"}
	// The suffixes each setting is for: its own byte alone or paired.
	reads := map[string][]string{"CR": {"CR", "CRLF", "LFCR"}, "LF": {"LF", "CRLF", "LFCR"}, "CRLF": {"LF", "CRLF", "LFCR"},
		"LFCR": {"LF", "CRLF", "LFCR"}, "TAB": {"TAB"}, "ANY": {"CR", "LF", "CRLF", "LFCR", "TAB"}}
	ends := map[string]string{"CR": "\r", "LF": "\n", "CRLF": "\n", "LFCR": "\n", "TAB": "\t", "ANY": "\r\n\t"}
	for term, names := range reads {
		for _, name := range names {
			suf := suffixes[name]
			var in string
			for _, s := range scans {
				in += s + suf
			}
			// Gap set: a pair's second byte arriving late must not be
			// taken for a stale partial frame or the start of the next.
			c := Config{Kind: "terminator", Terminator: term, Gap: 50 * time.Millisecond}
			eq(t, mustNew(t, c).Push([]byte(in), t0), scans...)

			f := mustNew(t, c)
			var got [][]byte
			for i := 0; i < len(in); i++ {
				got = append(got, f.Push([]byte{in[i]}, ms(i))...)
			}
			eq(t, got, scans...)

			// Each scan's suffix split after its first byte, the rest
			// arriving 30 ms (within the gap) or, when the first byte
			// already ended the frame, 200 ms (after the gap) later.
			delays := []int{30}
			if firstEnds := strings.Contains(ends[term], suf[:1]); firstEnds {
				delays = append(delays, 200)
			}
			for _, delay := range delays {
				f := mustNew(t, c)
				var got [][]byte
				at := 0
				for _, s := range scans {
					got = append(got, f.Push([]byte(s+suf[:1]), ms(at))...)
					at += delay
					got = append(got, f.Push([]byte(suf[1:]), ms(at))...)
					at += 1000
				}
				eq(t, got, scans...)
				if errs := f.Errors(); len(errs) != 0 {
					t.Errorf("%s framer, %s suffix, %d ms split: errors %v", term, name, delay, errs)
				}
			}
		}
	}
}

func TestTerminatorOverlongDiscarded(t *testing.T) {
	f := mustNew(t, Config{Kind: "terminator", Terminator: "CRLF", MaxFrame: 4})
	eq(t, f.Push([]byte("123456789\r\nok\r\n"), t0), "ok")
	errs := f.Errors()
	if len(errs) != 1 || !errors.Is(errs[0], ErrTooLong) {
		t.Fatalf("errors %v, want one ErrTooLong", errs)
	}
	if f.Errors() != nil {
		t.Fatal("Errors did not clear")
	}
	// Exactly MaxFrame is fine.
	eq(t, f.Push([]byte("1234\r\n"), t0), "1234")
}

func TestStaleDiscard(t *testing.T) {
	f := mustNew(t, Config{Kind: "terminator", Terminator: "CR", Gap: 100 * time.Millisecond})
	eq(t, f.Push([]byte("half"), ms(0)))
	eq(t, f.Flush(ms(50)))
	eq(t, f.Push([]byte("more\r"), ms(60)), "halfmore")
	eq(t, f.Push([]byte("cut"), ms(100)))
	eq(t, f.Flush(ms(300)))
	eq(t, f.Push([]byte("next\r"), ms(310)), "next")
	errs := f.Errors()
	if len(errs) != 1 || !errors.Is(errs[0], ErrIncomplete) {
		t.Fatalf("errors %v, want one ErrIncomplete", errs)
	}
}

func TestSTXETX(t *testing.T) {
	f := mustNew(t, Config{Kind: "stx_etx"})
	in := []byte("noise\x02AB\x03junk\x02C")
	eq(t, f.Push(in, t0), "AB")
	eq(t, f.Push([]byte("D\x03\x03\x02\x02E\x03"), t0), "CD", "E")
	errs := f.Errors()
	if len(errs) != 0 {
		// "\x02\x02E": an empty frame restarted, nothing lost.
		t.Fatalf("errors %v", errs)
	}
	eq(t, f.Push([]byte("\x02XY\x02Z\x03"), t0), "Z")
	if errs := f.Errors(); len(errs) != 1 || !errors.Is(errs[0], ErrIncomplete) {
		t.Fatalf("errors %v, want ErrIncomplete", errs)
	}
	f.Push([]byte("\x02partial"), t0)
	f.Reset()
	eq(t, f.Push([]byte("rest\x03\x02ok\x03"), t0), "ok")
}

func TestSTXETXStaleAndOverlong(t *testing.T) {
	f := mustNew(t, Config{Kind: "stx_etx", Gap: 50 * time.Millisecond, MaxFrame: 8})
	f.Push([]byte("\x02ABC"), ms(0))
	eq(t, f.Flush(ms(100)))
	// After the stale partial, "DEF\x03" is outside any frame.
	eq(t, f.Push([]byte("DEF\x03\x02GH\x03"), ms(110)), "GH")
	eq(t, f.Push([]byte("\x02123456789\x03\x02ok\x03"), ms(120)), "ok")
	errs := f.Errors()
	if len(errs) != 2 || !errors.Is(errs[0], ErrIncomplete) || !errors.Is(errs[1], ErrTooLong) {
		t.Fatalf("errors %v", errs)
	}
}

func TestIdleGap(t *testing.T) {
	f := mustNew(t, Config{Kind: "idle_gap", Gap: 30 * time.Millisecond})
	eq(t, f.Push([]byte("ab"), ms(0)))
	eq(t, f.Push([]byte("cd"), ms(10)))
	eq(t, f.Flush(ms(20)))
	eq(t, f.Flush(ms(40)), "abcd")
	eq(t, f.Flush(ms(80)))
	eq(t, f.Push([]byte("ef"), ms(100)))
	eq(t, f.Push([]byte("gh"), ms(200)), "ef")
	eq(t, f.Flush(ms(230)), "gh")
}

func TestIdleGapOverlong(t *testing.T) {
	f := mustNew(t, Config{Kind: "idle_gap", Gap: 30 * time.Millisecond, MaxFrame: 4})
	f.Push([]byte("abcdef"), ms(0))
	eq(t, f.Push([]byte("gh"), ms(10)))
	eq(t, f.Flush(ms(50)))
	eq(t, f.Push([]byte("ok"), ms(60)))
	eq(t, f.Flush(ms(100)), "ok")
	if errs := f.Errors(); len(errs) != 1 || !errors.Is(errs[0], ErrTooLong) {
		t.Fatalf("errors %v", errs)
	}
}

func TestFixed(t *testing.T) {
	f := mustNew(t, Config{Kind: "fixed", Length: 3, Gap: 20 * time.Millisecond})
	eq(t, f.Push([]byte("abcde"), ms(0)), "abc")
	eq(t, f.Push([]byte("f"), ms(5)), "def")
	f.Push([]byte("x"), ms(10))
	eq(t, f.Push([]byte("123"), ms(100)), "123")
	if errs := f.Errors(); len(errs) != 1 {
		t.Fatalf("errors %v", errs)
	}
}

func TestPN532(t *testing.T) {
	ack := []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}
	nack := []byte{0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00}
	resp := []byte{0x00, 0x00, 0xFF, 0x0C, 0xF4, 0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x00}
	var sum byte
	for _, c := range resp[5:17] {
		sum += c
	}
	resp[17] = -sum
	stream := append(append(append([]byte{0x55, 0x13}, ack...), resp...), nack...)
	f := mustNew(t, Config{Kind: "pn532"})
	var got [][]byte
	for i := range stream {
		got = append(got, f.Push(stream[i:i+1], ms(i))...)
	}
	want := [][]byte{ack[1:5], resp[1:18], nack[1:5]}
	if len(got) != len(want) {
		t.Fatalf("frames % X", got)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d % X, want % X", i, got[i], want[i])
		}
	}
	// Bad length checksum: skipped with an error, the next frame still found.
	f2 := mustNew(t, Config{Kind: "pn532"})
	bad := []byte{0x00, 0x00, 0xFF, 0x05, 0x05}
	got = f2.Push(append(bad, ack...), t0)
	if len(got) != 1 || !bytes.Equal(got[0], ack[1:5]) {
		t.Fatalf("frames % X", got)
	}
	if errs := f2.Errors(); len(errs) != 1 || !errors.Is(errs[0], ErrMalformed) {
		t.Fatalf("errors %v", errs)
	}
	// Frame longer than MaxFrame.
	f3 := mustNew(t, Config{Kind: "pn532", MaxFrame: 8})
	got = f3.Push(append([]byte{0x00, 0xFF, 0x10, 0xF0}, ack...), t0)
	if len(got) != 1 {
		t.Fatalf("frames % X", got)
	}
	if errs := f3.Errors(); len(errs) != 1 || !errors.Is(errs[0], ErrTooLong) {
		t.Fatalf("errors %v", errs)
	}
}

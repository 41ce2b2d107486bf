package frame

import (
	"testing"
	"time"
)

// fuzzFramer checks the invariants of every framer on arbitrary input cut
// into arbitrary chunks: no panic, no frame above MaxFrame, a bounded error
// list, and the same frames whether the input arrives at once or in pieces
// (for framers that do not depend on timing).
func fuzzFramer(f *testing.F, c Config, chunkInvariant bool) {
	f.Add([]byte("abc\r\ndef\r"), uint8(3))
	f.Add([]byte("\x02AB\x03\x02C"), uint8(1))
	f.Add([]byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD5, 0x4B, 0xE0, 0x00}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		const max = 16
		c.MaxFrame = max
		whole, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		pieces, _ := New(c)
		n := int(step%7) + 1
		var a, b [][]byte
		a = append(a, whole.Push(data, t0)...)
		a = append(a, whole.Flush(t0.Add(time.Hour))...)
		for i := 0; i < len(data); i += n {
			j := min(i+n, len(data))
			b = append(b, pieces.Push(data[i:j], t0)...)
		}
		b = append(b, pieces.Flush(t0.Add(time.Hour))...)
		for _, fr := range append(a, b...) {
			if len(fr) > max {
				t.Fatalf("frame of %d bytes above MaxFrame %d", len(fr), max)
			}
		}
		if len(whole.Errors()) > 64 || len(pieces.Errors()) > 64 {
			t.Fatal("unbounded error list")
		}
		if chunkInvariant {
			if len(a) != len(b) {
				t.Fatalf("chunking changed frames: %q vs %q", a, b)
			}
			for i := range a {
				if string(a[i]) != string(b[i]) {
					t.Fatalf("chunking changed frames: %q vs %q", a, b)
				}
			}
		}
	})
}

func FuzzTerminatorCR(f *testing.F) {
	fuzzFramer(f, Config{Kind: "terminator", Terminator: "CR"}, true)
}
func FuzzTerminatorCRLF(f *testing.F) {
	fuzzFramer(f, Config{Kind: "terminator", Terminator: "CRLF"}, true)
}
func FuzzTerminatorTAB(f *testing.F) {
	fuzzFramer(f, Config{Kind: "terminator", Terminator: "TAB"}, true)
}
func FuzzSTXETX(f *testing.F) { fuzzFramer(f, Config{Kind: "stx_etx"}, true) }
func FuzzIdleGap(f *testing.F) {
	fuzzFramer(f, Config{Kind: "idle_gap", Gap: time.Millisecond}, false)
}
func FuzzFixed(f *testing.F) { fuzzFramer(f, Config{Kind: "fixed", Length: 5}, true) }
func FuzzPN532(f *testing.F) { fuzzFramer(f, Config{Kind: "pn532"}, true) }

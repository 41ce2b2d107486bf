package frame

import (
	"bytes"
	"testing"
)

func BenchmarkTerminator(b *testing.B) {
	f, _ := New(Config{Kind: "terminator", Terminator: "CR"})
	in := bytes.Repeat([]byte(";6222021234567890128=30121010000000000?\r"), 64)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if len(f.Push(in, t0)) != 64 {
			b.Fatal("frames lost")
		}
	}
}

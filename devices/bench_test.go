//go:build linux

package devices_test

import (
	"testing"
	"time"

	"posagent/devices"
	"posagent/devices/internal/devtest"
)

// BenchmarkPtyToToken measures the last byte of a swipe written to the pty
// → the decoded, hashed token delivered to a subscriber of Events().
// Figures are reported, never asserted (target p99 < 2 ms).
func BenchmarkPtyToToken(b *testing.B) {
	for _, bc := range []struct {
		name, decoder string
		frame         []byte
	}{
		{"msr", "msr", []byte(msrSwipe)},
		{"rdm6300", "em4100", em4100("0A00B1C2D3")},
		{"barcode", "barcode", []byte("]E04006381333931\r")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := devtest.NewPty(b)
			m := run(b, []devices.Config{{Name: bc.name, Till: "T1", Path: p.Path, Decoder: bc.decoder}})
			next(b, m, online)
			head, last := bc.frame[:len(bc.frame)-1], bc.frame[len(bc.frame)-1:]
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				p.Write(b, head)
				t0 := time.Now()
				p.Write(b, last)
				e, _ := next(b, m, isData)
				lat = append(lat, time.Since(t0))
				if e.Data.TokenHash == "" {
					b.Fatal("no token")
				}
			}
			b.StopTimer()
			devtest.ReportLatency(b, lat)
		})
	}
}

package decode

import "testing"

func BenchmarkMSR(b *testing.B) {
	in := swipe(false, "%B"+pan+"^DOE/JOHN^2512101000000000000?", ";"+pan+"=25121010000000000?", "+011234567890123456=724724100000000000030300?")
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := MSR(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPN532(b *testing.B) {
	in := append(append([]byte{}, pnACK...), pnFrame(0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF)...)
	for b.Loop() {
		if _, err := PN532(in); err != nil {
			b.Fatal(err)
		}
	}
}

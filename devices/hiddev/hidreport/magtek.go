package hidreport

import (
	"fmt"
	"strings"
)

// MagTek-style HID swipe reader input report (no report ID):
//
//	[0..2]     track 1..3 decode status, 0 = decoded, otherwise error
//	[3..5]     track 1..3 data length
//	[6]        card encode type
//	[7:117]    track 1 data (110 bytes)
//	[117:227]  track 2 data
//	[227:337]  track 3 data
//
// Devices that number their reports put a report ID in front (338 bytes).
const (
	MagTekReportLen = 337
	magTrackLen     = 110
	magDataOffset   = 7
)

// MagTrack is one track of a MagTek report.
type MagTrack struct {
	N      int
	Status byte // 0 = decoded by the reader
	Data   string
}

// Missing reports an empty, error-free track (not encoded on the card).
func (t MagTrack) Missing() bool { return t.Status == 0 && t.Data == "" }

// ParseMagTek splits a track report into its three tracks.
func ParseMagTek(r []byte) ([3]MagTrack, error) {
	var out [3]MagTrack
	switch len(r) {
	case MagTekReportLen:
	case MagTekReportLen + 1:
		r = r[1:]
	default:
		return out, fmt.Errorf("card reader report has %d bytes, want %d (MagTek HID layout): set hid_report to the reader's mode", len(r), MagTekReportLen)
	}
	for i := range 3 {
		n := int(r[3+i])
		if n > magTrackLen {
			return out, fmt.Errorf("track %d length %d exceeds %d: corrupt report, swipe again", i+1, n, magTrackLen)
		}
		off := magDataOffset + i*magTrackLen
		out[i] = MagTrack{N: i + 1, Status: r[i], Data: string(r[off : off+n])}
	}
	return out, nil
}

// MagTekFrame renders the tracks the way a reader in keyboard mode sends
// them ("%...?;...?+...?", with "%E?" style markers for unreadable tracks),
// so one MSR decoder serves serial, wedge and HID readers alike.
func MagTekFrame(tracks [3]MagTrack) []byte {
	starts := [3]byte{'%', ';', '+'}
	var b strings.Builder
	for i, t := range tracks {
		switch {
		case t.Status != 0:
			b.WriteByte(starts[i])
			b.WriteString("E?")
		case t.Data == "":
		default:
			d := t.Data
			if d[0] != starts[i] && !(i == 2 && d[0] == ';') {
				d = string(starts[i]) + d
			}
			if !strings.HasSuffix(d, "?") {
				d += "?"
			}
			b.WriteString(d)
		}
	}
	return []byte(b.String())
}

// EncodeMagTek builds a MagTek report; a nil track slot is encoded as an
// error track. Tests and recorders use it to produce fixtures.
func EncodeMagTek(tracks [3]*string) []byte {
	r := make([]byte, MagTekReportLen)
	for i, t := range tracks {
		if t == nil {
			r[i] = 1
			continue
		}
		n := copy(r[magDataOffset+i*magTrackLen:magDataOffset+(i+1)*magTrackLen], *t)
		r[3+i] = byte(n)
	}
	return r
}

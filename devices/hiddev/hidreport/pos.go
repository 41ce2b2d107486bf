package hidreport

import (
	"errors"
	"fmt"
)

// HID POS barcode scanner "scanned data" report (HID Point of Sale Usage
// Tables, usage page 0x8C), as hidapi returns it with the report ID first:
//
//	[0]      report ID (0x02)
//	[1]      number of valid data bytes in this report (0..56)
//	[2:5]    symbology identifier 1..3 (AIM identifier, e.g. "]E0", or zeros)
//	[5:61]   decoded data
//	[61:63]  vendor specific
//	[63]     bit 0: decode data continued (more reports follow)
const (
	POSReportID   = 0x02
	posReportLen  = 64
	posDataOffset = 5
	posDataMax    = 56
	posFlagOffset = 63
	// MaxLabel bounds a reassembled label so a scanner that never clears the
	// continuation flag cannot grow memory without limit.
	MaxLabel = 8 << 10
)

// ErrLabelTooLong is returned when continuation reports exceed MaxLabel.
var ErrLabelTooLong = errors.New("barcode label exceeds 8 KiB across continuation reports; rescan, or check the scanner's HID POS settings")

// Label is one reassembled barcode.
type Label struct {
	Data      []byte
	Symbology string // AIM identifier such as "]Q1", "0x0D0000" for non-AIM ids, "" when absent
	Reports   int    // how many reports it took
}

// POS reassembles HID POS scanned-data reports into labels.
type POS struct {
	buf     []byte
	sym     string
	reports int
}

// Reset drops a partly received label (after an unplug: never half-deliver).
func (p *POS) Reset() { p.buf, p.sym, p.reports = nil, "", 0 }

// Pending reports whether a label is partly received.
func (p *POS) Pending() bool { return p.reports > 0 }

// Push consumes one report. It returns a label when the last report of a
// label arrives, nil while continuation reports are outstanding, and ignores
// reports with other IDs (status, feature echoes).
func (p *POS) Push(r []byte) (*Label, error) {
	switch len(r) {
	case posReportLen:
		if r[0] != POSReportID {
			return nil, nil
		}
	case posReportLen - 1: // device without report IDs: hidapi strips nothing
		r = append([]byte{POSReportID}, r...)
	default:
		return nil, fmt.Errorf("HID POS report has %d bytes, want 64 (or 63 without report ID): is the scanner in HID POS mode?", len(r))
	}
	n := int(r[1])
	if n > posDataMax {
		p.Reset()
		return nil, fmt.Errorf("HID POS report claims %d data bytes, at most %d fit: corrupt report, rescan", n, posDataMax)
	}
	if p.reports == 0 {
		p.sym = symbology(r[2:5])
	}
	if len(p.buf)+n > MaxLabel {
		p.Reset()
		return nil, ErrLabelTooLong
	}
	p.buf = append(p.buf, r[posDataOffset:posDataOffset+n]...)
	p.reports++
	if r[posFlagOffset]&1 != 0 {
		return nil, nil
	}
	l := &Label{Data: p.buf, Symbology: p.sym, Reports: p.reports}
	p.buf, p.sym, p.reports = nil, "", 0
	return l, nil
}

func symbology(b []byte) string {
	if b[0] == ']' && b[1] >= 0x20 && b[1] < 0x7F && b[2] >= 0x20 && b[2] < 0x7F {
		return string(b)
	}
	if b[0] == 0 && b[1] == 0 && b[2] == 0 {
		return ""
	}
	return fmt.Sprintf("0x%02X%02X%02X", b[0], b[1], b[2])
}

// EncodePOS builds the reports a HID POS scanner sends for data; tests and
// recorders use it to produce fixtures. aim is "" or a 3-byte AIM identifier.
func EncodePOS(aim string, data []byte) [][]byte {
	var out [][]byte
	for first := true; first || len(data) > 0; first = false {
		r := make([]byte, posReportLen)
		r[0] = POSReportID
		n := min(len(data), posDataMax)
		r[1] = byte(n)
		copy(r[2:5], aim)
		copy(r[posDataOffset:], data[:n])
		data = data[n:]
		if len(data) > 0 {
			r[posFlagOffset] = 1
		}
		out = append(out, r)
	}
	return out
}

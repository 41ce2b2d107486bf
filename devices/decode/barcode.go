package decode

import "unicode/utf8"

// aimNames maps an AIM symbology identifier's code character (and, where
// the modifier changes the meaning, code+modifier) to a name.
var aimNames = map[string]string{
	"A": "Code 39", "B": "Telepen", "C": "Code 128", "C1": "GS1-128", "D": "Code One",
	"E": "EAN/UPC", "E0": "EAN-13", "E4": "EAN-8", "E3": "EAN/UPC with add-on",
	"F": "Codabar", "G": "Code 93", "H": "Code 11", "I": "ITF", "K": "Code 16K",
	"L": "PDF417", "M": "MSI", "O": "Codablock", "Q": "QR", "Q3": "GS1 QR", "Q5": "GS1 QR",
	"R": "Straight 2 of 5", "S": "2 of 5", "X": "Other", "Z": "Non-barcode",
	"d": "DataMatrix", "d2": "GS1 DataMatrix", "e": "GS1 DataBar", "z": "Aztec",
	"U": "MaxiCode", "o": "OCR", "p": "Posicode", "Y": "System expansion",
}

// Barcode decodes a scanner's frame: an optional AIM symbology identifier
// (`]` + code character + modifier, e.g. `]E0` EAN-13, `]C1` GS1-128, `]Q1`
// QR) is stripped into AIM and Symbology; a trailing CR/LF is removed. The
// text must be UTF-8 without control characters other than the GS1/ISO 15434
// separators (GS, RS, EOT). EAN-13 and EAN-8 check digits are verified when
// the AIM identifier says so.
func Barcode(frame []byte) (Read, error) {
	b := frame
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return Read{}, NewError(ErrNoData, "", "empty scan")
	}
	rd := Read{Kind: "barcode"}
	if len(b) >= 3 && b[0] == ']' && isAlpha(b[1]) && isAlnum(b[2]) {
		rd.AIM = string(b[:3])
		code, mod := string(b[1]), string(b[1:3])
		if name, ok := aimNames[mod]; ok {
			rd.Symbology = name
		} else if name, ok := aimNames[code]; ok {
			rd.Symbology = name
		} else {
			rd.Symbology = "AIM " + rd.AIM
		}
		b = b[3:]
	}
	if len(b) == 0 {
		return Read{}, NewError(ErrFormat, "", "scan has a symbology identifier but no data")
	}
	if !utf8.Valid(b) {
		return Read{}, NewError(ErrFormat, "set the scanner to UTF-8 output, or check the keyboard layout", "scan is not valid UTF-8")
	}
	for _, c := range b {
		if (c < 0x20 && c != 0x1D && c != 0x1E && c != 0x04) || c == 0x7F {
			return Read{}, NewError(ErrFormat, "check the scanner's suffix settings and the framer", "scan contains control characters")
		}
	}
	s := string(b)
	switch rd.AIM {
	case "]E0", "]E4":
		want := 13
		if rd.AIM == "]E4" {
			want = 8
		}
		if len(s) != want || !allDigits(s) {
			return Read{}, NewError(ErrFormat, "", "%s code must have %d digits", rd.Symbology, want)
		}
		if !gtinCheck(s) {
			return Read{}, NewError(ErrChecksum, "scan again", "%s check digit mismatch", rd.Symbology)
		}
	}
	rd.Data = s
	return rd, nil
}

// gtinCheck verifies the GS1 mod-10 check digit (weights 3,1 from the right).
func gtinCheck(s string) bool {
	sum := 0
	for i := len(s) - 2; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-2-i)%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return (10-sum%10)%10 == int(s[len(s)-1]-'0')
}

func isAlpha(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// Luhn reports whether s is all digits with a valid Luhn check digit.
func Luhn(s string) bool {
	if len(s) < 2 || !allDigits(s) {
		return false
	}
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

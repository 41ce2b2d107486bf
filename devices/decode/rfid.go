package decode

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// trimFrame strips the given leading and trailing delimiter bytes (the
// framer may or may not have removed them) and trailing CR/LF.
func trimFrame(b []byte, lead, trail byte) []byte {
	if len(b) > 0 && b[0] == lead {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == trail {
		b = b[:len(b)-1]
	}
	return b
}

func rfidRead(uid []byte) Read {
	return Read{Kind: "rfid", UID: uid, Data: strings.ToUpper(hex.EncodeToString(uid))}
}

// EM4100 decodes a 125 kHz frame as RDM6300-type readers send it: STX, 10
// ASCII hex digits (version byte + 4 data bytes), 2 ASCII hex digits of the
// XOR of those 5 bytes, ETX. STX/ETX may already be stripped by the framer.
// The UID is the 5 data bytes.
func EM4100(frame []byte) (Read, error) {
	b := trimFrame(frame, 0x02, 0x03)
	if len(b) == 0 {
		return Read{}, NewError(ErrNoData, "", "empty EM4100 frame")
	}
	if len(b) != 12 {
		return Read{}, NewError(ErrFormat, "check the framer (stx_etx) and the reader model", "EM4100 frame has %d characters, want 12 hex digits", len(b))
	}
	raw := make([]byte, 6)
	if _, err := hex.Decode(raw, b); err != nil {
		return Read{}, NewError(ErrFormat, "check the baud rate (RDM6300: 9600 8N1)", "EM4100 frame is not hex")
	}
	var x byte
	for _, c := range raw[:5] {
		x ^= c
	}
	if x != raw[5] {
		return Read{}, NewError(ErrChecksum, "hold the card still and read again", "EM4100 checksum mismatch")
	}
	return rfidRead(raw[:5]), nil
}

// Parallax decodes the Parallax 125 kHz reader frame: LF, 10 ASCII hex
// digits, CR (delimiters may already be stripped). It has no checksum.
func Parallax(frame []byte) (Read, error) {
	b := frame
	if len(b) > 0 && b[0] == '\n' {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return Read{}, NewError(ErrNoData, "", "empty Parallax frame")
	}
	if len(b) != 10 {
		return Read{}, NewError(ErrFormat, "check the framer (terminator CR) and baud rate (2400 8N1)", "Parallax frame has %d characters, want 10 hex digits", len(b))
	}
	raw := make([]byte, 5)
	if _, err := hex.Decode(raw, b); err != nil {
		return Read{}, NewError(ErrFormat, "check the baud rate (2400 8N1)", "Parallax frame is not hex")
	}
	return rfidRead(raw), nil
}

// PN532 command codes seen in responses.
const (
	pn532TFIResponse        = 0xD5
	pn532InListPassiveReply = 0x4B
	pn532ErrorTFI           = 0x7F
)

// PN532 decodes PN532 HSU bytes: one frame or several in a row (ACK then
// response, as idle-gap framing delivers them), with or without preamble
// and postamble. The first InListPassiveTarget response with a target gives
// the UID (NFCID1). ACK frames and responses without a card give ErrNoData;
// NACK gives ErrNACK; length or data checksum failures give ErrChecksum.
func PN532(frame []byte) (Read, error) {
	b := frame
	var firstErr error
	sawFrame := false
	for {
		i := 0
		for i+1 < len(b) && !(b[i] == 0x00 && b[i+1] == 0xFF) {
			i++
		}
		if i+1 >= len(b) {
			break
		}
		b = b[i:]
		if len(b) < 4 {
			if firstErr == nil {
				firstErr = NewError(ErrFormat, "check the framer (pn532 or idle_gap)", "PN532 frame truncated")
			}
			break
		}
		switch {
		case b[2] == 0x00 && b[3] == 0xFF:
			sawFrame = true
			b = b[4:]
			continue
		case b[2] == 0xFF && b[3] == 0x00:
			if firstErr == nil {
				firstErr = NewError(ErrNACK, "the reader asked for the command again; it is resent automatically", "PN532 NACK")
			}
			sawFrame = true
			b = b[4:]
			continue
		}
		var hdr, n int
		if b[2] == 0xFF && b[3] == 0xFF {
			if len(b) < 7 || byte(b[4]+b[5]+b[6]) != 0 {
				if firstErr == nil {
					firstErr = NewError(ErrChecksum, "check the wiring and baud rate (115200 8N1)", "PN532 extended length checksum mismatch")
				}
				b = b[1:]
				continue
			}
			hdr, n = 7, int(b[4])<<8|int(b[5])
			if n == 0 {
				if firstErr == nil {
					firstErr = NewError(ErrFormat, "check the wiring and baud rate (115200 8N1)", "PN532 extended frame with zero length")
				}
				b = b[1:]
				continue
			}
		} else {
			if byte(b[2]+b[3]) != 0 || b[2] == 0 {
				if firstErr == nil {
					firstErr = NewError(ErrChecksum, "check the wiring and baud rate (115200 8N1)", "PN532 length checksum mismatch")
				}
				b = b[1:]
				continue
			}
			hdr, n = 4, int(b[2])
		}
		if len(b) < hdr+n+1 {
			if firstErr == nil {
				firstErr = NewError(ErrFormat, "check the framer (pn532 or idle_gap) and max_frame", "PN532 frame truncated: %d of %d bytes", len(b), hdr+n+1)
			}
			break
		}
		sawFrame = true
		data := b[hdr : hdr+n]
		dcs := b[hdr+n]
		b = b[hdr+n+1:]
		var sum byte
		for _, c := range data {
			sum += c
		}
		if sum+dcs != 0 {
			if firstErr == nil {
				firstErr = NewError(ErrChecksum, "hold the card still and read again", "PN532 data checksum mismatch")
			}
			continue
		}
		if data[0] == pn532ErrorTFI {
			if firstErr == nil {
				firstErr = NewError(ErrFormat, "the reader rejected a command; restart the reader", "PN532 application error frame")
			}
			continue
		}
		if len(data) < 2 || data[0] != pn532TFIResponse || data[1] != pn532InListPassiveReply {
			continue // another command's response: no card data
		}
		uid, err := inListUID(data[2:])
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if uid == nil {
			continue // no target in the field
		}
		return rfidRead(uid), nil
	}
	if firstErr != nil {
		return Read{}, firstErr
	}
	if !sawFrame {
		return Read{}, NewError(ErrFormat, "check the framer (pn532) and baud rate (115200 8N1)", "no PN532 frame found")
	}
	return Read{}, NewError(ErrNoData, "", "PN532 frame without card data")
}

// inListUID parses an InListPassiveTarget response body for 106 kbps type A:
// NbTg, then Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID… (ATS may
// follow). nil, nil means no target.
func inListUID(p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, NewError(ErrFormat, "", "PN532 InListPassiveTarget response without target count")
	}
	if p[0] == 0 {
		return nil, nil
	}
	if p[0] > 2 {
		return nil, NewError(ErrFormat, "", "PN532 InListPassiveTarget reports %d targets, at most 2 possible", p[0])
	}
	if len(p) < 6 {
		return nil, NewError(ErrFormat, "", "PN532 InListPassiveTarget response truncated")
	}
	l := int(p[5])
	if l != 4 && l != 7 && l != 10 {
		return nil, NewError(ErrFormat, "only ISO 14443A cards (106 kbps) are supported", "PN532 UID length %d is not 4, 7 or 10", l)
	}
	if len(p) < 6+l {
		return nil, NewError(ErrFormat, "", "PN532 UID truncated")
	}
	return append([]byte(nil), p[6:6+l]...), nil
}

// UID formats of keyboard-wedge RFID readers, named as reader manuals name
// their output settings ("8H10D": 8 hex digits shown as 10 decimal
// digits). Examples for EM4100 card 0A00B1C2D3 in the comments.
const (
	UIDHex    = "hex"     // all UID bytes as hex, card order: 0A00B1C2D3
	UIDHexRev = "hex_rev" // bytes reversed (many 13.56 MHz wedges): D3C2B1000A
	// UID8H10D: the low 4 bytes (last 8 hex digits) as 10 decimal digits,
	// the number printed on EM4100 cards and used by access control:
	// 00B1C2D3 → 0011649747.
	UID8H10D = "8h10d"
	// UIDDec10 is 8h10d under the name this package gave it first.
	UIDDec10 = "dec10"
	// UID8H10DRev: 8H10D of the reversed bytes, i.e. the first 4 bytes
	// least significant first, the decimal many 13.56 MHz wedges type for a
	// 4-byte MIFARE UID: C2B1000A → 3266379786.
	UID8H10DRev = "8h10d_rev"
	// UID10H13D: the low 5 bytes (10 hex digits, a whole EM4100 ID) as 13
	// decimal digits: 0A00B1C2D3 → 0042961322707.
	UID10H13D = "10h13d"
	// UID6H8D: the low 3 bytes as the 3-digit facility (3rd-last byte) and
	// the 5-digit card number (last 2 bytes), run together: 17749875.
	UID6H8D = "6h8d"
	// UIDW26: the Wiegand 26 facility,card pair of the same 3 bytes: 177,49875.
	UIDW26 = "w26"
)

// UIDFormats lists the accepted formats.
var UIDFormats = []string{UIDHex, UIDHexRev, UID8H10D, UID8H10DRev, UID10H13D, UID6H8D, UIDW26, UIDDec10}

// ValidUIDFormat reports whether f (lower case) is a UID format; "" is
// not (rules default it to hex themselves).
func ValidUIDFormat(f string) bool { return validUIDFormat(f) }

func validUIDFormat(f string) bool {
	for _, x := range UIDFormats {
		if x == f {
			return true
		}
	}
	return false
}

// WedgeUID parses the text a keyboard-wedge RFID reader typed (terminator
// already removed) in the given format. The UID holds the bytes the format
// carries, in card order: all for hex/hex_rev, 5 for 10h13d, 4 for
// 8h10d/dec10/8h10d_rev, 3 for 6h8d/w26.
func WedgeUID(s string, format string) (Read, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Read{}, NewError(ErrNoData, "", "empty UID")
	}
	hint := "check the reader's output format setting against the device config"
	switch f := strings.ToLower(format); f {
	case UIDHex, UIDHexRev:
		if len(s)%2 != 0 || len(s) < 8 || len(s) > 20 {
			return Read{}, NewError(ErrFormat, hint, "UID has %d hex digits, want an even number from 8 to 20", len(s))
		}
		uid, err := hex.DecodeString(s)
		if err != nil {
			return Read{}, NewError(ErrFormat, hint, "UID is not hex")
		}
		if f == UIDHexRev {
			reverse(uid)
		}
		return rfidRead(uid), nil
	case UID8H10D, UIDDec10, UID8H10DRev:
		if len(s) != 10 || !allDigits(s) {
			return Read{}, NewError(ErrFormat, hint, "UID has %d characters, want 10 decimal digits", len(s))
		}
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return Read{}, NewError(ErrFormat, hint, "UID number exceeds 4 bytes (4294967295)")
		}
		uid := make([]byte, 4)
		if f == UID8H10DRev {
			binary.LittleEndian.PutUint32(uid, uint32(v))
		} else {
			binary.BigEndian.PutUint32(uid, uint32(v))
		}
		return rfidRead(uid), nil
	case UID10H13D:
		if len(s) != 13 || !allDigits(s) {
			return Read{}, NewError(ErrFormat, hint, "UID has %d characters, want 13 decimal digits", len(s))
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v >= 1<<40 {
			return Read{}, NewError(ErrFormat, hint, "UID number exceeds 5 bytes (1099511627775)")
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], v)
		return rfidRead(append([]byte(nil), b[3:]...)), nil
	case UID6H8D, UIDW26:
		var fs, cs string
		if f == UID6H8D {
			if len(s) != 8 || !allDigits(s) {
				return Read{}, NewError(ErrFormat, hint, "UID has %d characters, want 8 decimal digits (3 facility, 5 card)", len(s))
			}
			fs, cs = s[:3], s[3:]
		} else {
			var ok bool
			fs, cs, ok = strings.Cut(s, ",")
			if !ok || fs == "" || cs == "" || len(fs) > 3 || len(cs) > 5 || !allDigits(fs) || !allDigits(cs) {
				return Read{}, NewError(ErrFormat, hint, "UID is not facility,card (e.g. 123,45678)")
			}
		}
		fac, _ := strconv.Atoi(fs)
		card, _ := strconv.Atoi(cs)
		if fac > 255 || card > 65535 {
			return Read{}, NewError(ErrFormat, hint, "%s facility must be 0–255 and card 0–65535", strings.ToUpper(f))
		}
		return rfidRead([]byte{byte(fac), byte(card >> 8), byte(card)}), nil
	}
	return Read{}, NewError(ErrFormat, "", "UID format %q unknown; use one of %s", format, strings.Join(UIDFormats, ", "))
}

// FormatUID renders UID bytes (card order) in a wedge format, so a card
// read by a serial reader matches the number a wedge reader or the card
// print shows.
func FormatUID(uid []byte, format string) (string, error) {
	if len(uid) == 0 {
		return "", NewError(ErrRule, "", "no UID in the read")
	}
	switch strings.ToLower(format) {
	case UIDHex, "":
		return strings.ToUpper(hex.EncodeToString(uid)), nil
	case UIDHexRev:
		r := append([]byte(nil), uid...)
		reverse(r)
		return strings.ToUpper(hex.EncodeToString(r)), nil
	case UID8H10D, UIDDec10:
		if len(uid) < 4 {
			return "", NewError(ErrRule, "", "UID of %d bytes is too short for %s", len(uid), format)
		}
		return fmt.Sprintf("%010d", binary.BigEndian.Uint32(uid[len(uid)-4:])), nil
	case UID8H10DRev:
		if len(uid) < 4 {
			return "", NewError(ErrRule, "", "UID of %d bytes is too short for 8h10d_rev", len(uid))
		}
		return fmt.Sprintf("%010d", binary.LittleEndian.Uint32(uid[:4])), nil
	case UID10H13D:
		if len(uid) < 5 {
			return "", NewError(ErrRule, "", "UID of %d bytes is too short for 10h13d", len(uid))
		}
		var b [8]byte
		copy(b[3:], uid[len(uid)-5:])
		return fmt.Sprintf("%013d", binary.BigEndian.Uint64(b[:])), nil
	case UID6H8D, UIDW26:
		if len(uid) < 3 {
			return "", NewError(ErrRule, "", "UID of %d bytes is too short for %s", len(uid), format)
		}
		n := len(uid)
		sep := ","
		if strings.ToLower(format) == UID6H8D {
			sep = ""
		}
		return fmt.Sprintf("%03d%s%05d", uid[n-3], sep, int(uid[n-2])<<8|int(uid[n-1])), nil
	}
	return "", NewError(ErrRule, "", "UID format %q unknown; use one of %s", format, strings.Join(UIDFormats, ", "))
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

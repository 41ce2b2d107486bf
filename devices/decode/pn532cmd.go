package decode

// Host side of the PN532 HSU protocol: the PN532 only answers commands, so
// the host builds command frames and classifies whatever frame comes back.
// Pure code; the serial driver that writes and reads these lives in devices.

// PN532 frame identifiers and the command codes the host drives a reader
// with (PN532 User Manual, UM0701-02).
const (
	PN532TFIHost  = 0xD4 // frame from the host to the PN532
	PN532TFIReply = 0xD5 // frame from the PN532 to the host

	PN532CmdSAMConfiguration      = 0x14
	PN532CmdInListPassiveTarget   = 0x4A
	PN532ReplySAMConfiguration    = PN532CmdSAMConfiguration + 1
	PN532ReplyInListPassiveTarget = PN532CmdInListPassiveTarget + 1
)

// PN532MaxData is the most TFI+command+parameter bytes an extended frame
// carries.
const PN532MaxData = 0xFFFF

// PN532 frame kinds returned by ParsePN532Frame.
const (
	PN532Ack      = "ack"   // 00 FF 00 FF: the command was received
	PN532Nack     = "nack"  // 00 FF FF 00: send the last frame again
	PN532Info     = "info"  // a command (TFI D4) or a response (TFI D5)
	PN532AppError = "error" // the syntax error frame (TFI position holds 7F)
)

// PN532Frame is one parsed frame.
type PN532Frame struct {
	Kind   string // PN532Ack, PN532Nack, PN532Info or PN532AppError
	TFI    byte   // info frames: PN532TFIHost or PN532TFIReply
	Code   byte   // info frames: the command or response code
	Params []byte // info frames: the bytes after the code
}

// pn532WakeUp is the HSU wake-up: the PN532 sleeps (LowVbat) after power-up
// and needs 0x55 0x55 followed by a long preamble of zeros before the first
// command, which must be SAMConfiguration. The same preamble libnfc sends.
var pn532WakeUp = []byte{0x55, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}

// PN532WakeUp returns the HSU wake-up preamble to send before
// SAMConfiguration.
func PN532WakeUp() []byte { return append([]byte(nil), pn532WakeUp...) }

// PN532AckFrame is the ACK frame with preamble and postamble. Sent by the
// host it aborts the command the PN532 is executing.
func PN532AckFrame() []byte { return []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00} }

// PN532NackFrame is the NACK frame with preamble and postamble. Sent by the
// host it asks the PN532 to send its last response again.
func PN532NackFrame() []byte { return []byte{0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00} }

// PN532Command builds a host→PN532 information frame: preamble 00, start
// code 00 FF, LEN, LCS, TFI D4, code, params, DCS, postamble 00. Frames with
// more than 255 data bytes use the extended form (00 FF FF FF LENM LENL LCS).
func PN532Command(code byte, params ...byte) ([]byte, error) {
	return pn532Info(PN532TFIHost, code, params)
}

// PN532Response builds a PN532→host information frame (TFI D5), as a reader
// sends it; reader simulators and tests use it.
func PN532Response(code byte, params ...byte) ([]byte, error) {
	return pn532Info(PN532TFIReply, code, params)
}

// PN532SAMConfiguration is SAMConfiguration in normal mode (no SAM), the
// first command after the wake-up. Timeout 0x14 (1 s, only used in virtual
// card mode) and IRQ 0x01 are the values reader libraries send.
func PN532SAMConfiguration() []byte {
	f, _ := PN532Command(PN532CmdSAMConfiguration, 0x01, 0x14, 0x01) // short: cannot fail
	return f
}

// PN532InListPassiveTarget is InListPassiveTarget for one target (MaxTg 1)
// at 106 kbps type A (BrTy 0x00): ISO 14443A cards such as MIFARE.
func PN532InListPassiveTarget() []byte {
	f, _ := PN532Command(PN532CmdInListPassiveTarget, 0x01, 0x00) // short: cannot fail
	return f
}

func pn532Info(tfi, code byte, params []byte) ([]byte, error) {
	n := 2 + len(params) // TFI + code + params
	if n > PN532MaxData {
		return nil, NewError(ErrFormat, "send fewer parameter bytes", "PN532 frame of %d data bytes exceeds %d", n, PN532MaxData)
	}
	f := make([]byte, 0, n+10)
	f = append(f, 0x00, 0x00, 0xFF)
	if n <= 0xFF {
		f = append(f, byte(n), byte(-n))
	} else {
		hi, lo := byte(n>>8), byte(n)
		f = append(f, 0xFF, 0xFF, hi, lo, -(hi + lo))
	}
	sum := tfi + code
	for _, c := range params {
		sum += c
	}
	f = append(f, tfi, code)
	f = append(f, params...)
	return append(f, -sum, 0x00), nil
}

// ParsePN532Frame parses exactly one frame: optional preamble zeros, the
// start code 00 FF, the frame, an optional postamble 00 (the pn532 framer
// delivers frames without it). LCS and DCS are checked (ErrChecksum);
// anything else malformed gives ErrFormat. Params alias b.
func ParsePN532Frame(b []byte) (PN532Frame, error) {
	i := 0
	for i < len(b) && b[i] == 0x00 {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != 0xFF {
		return PN532Frame{}, NewError(ErrFormat, "check the baud rate (115200 8N1)", "no PN532 start code 00 FF")
	}
	b = b[i+1:] // after the start code
	if len(b) < 2 {
		return PN532Frame{}, NewError(ErrFormat, "", "PN532 frame truncated")
	}
	var f PN532Frame
	var rest []byte
	switch {
	case b[0] == 0x00 && b[1] == 0xFF:
		f.Kind, rest = PN532Ack, b[2:]
	case b[0] == 0xFF && b[1] == 0x00:
		f.Kind, rest = PN532Nack, b[2:]
	default:
		hdr, n := 2, int(b[0])
		if b[0] == 0xFF && b[1] == 0xFF { // extended: FF FF LENM LENL LCS
			if len(b) < 5 {
				return PN532Frame{}, NewError(ErrFormat, "", "PN532 extended frame truncated")
			}
			if b[2]+b[3]+b[4] != 0 {
				return PN532Frame{}, NewError(ErrChecksum, "check the wiring and baud rate (115200 8N1)", "PN532 extended length checksum mismatch")
			}
			hdr, n = 5, int(b[2])<<8|int(b[3])
		} else if b[0]+b[1] != 0 {
			return PN532Frame{}, NewError(ErrChecksum, "check the wiring and baud rate (115200 8N1)", "PN532 length checksum mismatch")
		}
		if n == 0 {
			return PN532Frame{}, NewError(ErrFormat, "", "PN532 frame with zero length")
		}
		if len(b) < hdr+n+1 {
			return PN532Frame{}, NewError(ErrFormat, "", "PN532 frame truncated: %d of %d bytes", len(b), hdr+n+1)
		}
		data := b[hdr : hdr+n]
		var sum byte
		for _, c := range data {
			sum += c
		}
		if sum+b[hdr+n] != 0 {
			return PN532Frame{}, NewError(ErrChecksum, "hold the card still and read again", "PN532 data checksum mismatch")
		}
		rest = b[hdr+n+1:]
		switch {
		case n == 1 && data[0] == pn532ErrorTFI:
			f.Kind = PN532AppError
		case n >= 2 && (data[0] == PN532TFIHost || data[0] == PN532TFIReply):
			f.Kind, f.TFI, f.Code, f.Params = PN532Info, data[0], data[1], data[2:]
		default:
			return PN532Frame{}, NewError(ErrFormat, "", "PN532 frame with unknown frame identifier")
		}
	}
	if len(rest) > 1 || (len(rest) == 1 && rest[0] != 0x00) {
		return PN532Frame{}, NewError(ErrFormat, "", "PN532 frame followed by %d unexpected bytes", len(rest))
	}
	return f, nil
}

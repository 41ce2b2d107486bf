// Package decode turns one frame from a card reader or scanner into a Read.
//
// Pure code: no I/O. Decoders never panic on input and never return a usable
// read for input that fails its checks (checksums, charset, structure).
// Values returned here hold raw card data: log them only through their
// String/LogValue methods, which mask.
package decode

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Read is one decoded read.
type Read struct {
	Kind string // "msr" | "rfid" | "barcode"
	// Data is the decoded payload: the barcode text (AIM identifier removed),
	// the UID as upper-case hex for RFID, track 2's data for MSR when track 2
	// read well (else empty).
	Data string
	// Symbology is the barcode symbology name from the AIM identifier
	// ("EAN-13", "QR", …), empty when the scanner sent none.
	Symbology string
	// AIM is the raw AIM symbology identifier ("]E0"), empty when absent.
	AIM    string
	Tracks []Track // MSR: always tracks 1, 2 and 3, in order
	UID    []byte  // RFID: the card UID, most significant byte first
}

// Track is one magnetic-stripe track.
type Track struct {
	N      int    // 1, 2 or 3
	Status string // "ok" | "missing" | "error" | "lrc"
	Data   string // between the start and end sentinels; empty unless ok
}

// Track statuses.
const (
	StatusOK      = "ok"
	StatusMissing = "missing"
	StatusError   = "error"
	StatusLRC     = "lrc"
)

// Track returns track n (1–3) of an MSR read.
func (r Read) Track(n int) (Track, bool) {
	for _, t := range r.Tracks {
		if t.N == n {
			return t, true
		}
	}
	return Track{}, false
}

// String describes the read with every card number masked, so a read can
// be logged or printed safely.
func (r Read) String() string {
	var b strings.Builder
	b.WriteString(r.Kind)
	if r.AIM != "" || r.Symbology != "" {
		fmt.Fprintf(&b, " symbology=%q aim=%q", r.Symbology, r.AIM)
	}
	if len(r.Tracks) > 0 {
		b.WriteString(" tracks=")
		for i, t := range r.Tracks {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d:%s", t.N, t.Status)
		}
	}
	if len(r.UID) > 0 {
		fmt.Fprintf(&b, " uid=%s", Mask(strings.ToUpper(hex.EncodeToString(r.UID))))
	}
	if r.Data != "" {
		fmt.Fprintf(&b, " data=%s", Mask(r.Data))
	}
	return b.String()
}

// LogValue masks card data for log/slog.
func (r Read) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("kind", r.Kind)}
	if r.Symbology != "" {
		attrs = append(attrs, slog.String("symbology", r.Symbology))
	}
	if len(r.Tracks) > 0 {
		st := make([]string, len(r.Tracks))
		for i, t := range r.Tracks {
			st[i] = fmt.Sprintf("%d:%s", t.N, t.Status)
		}
		attrs = append(attrs, slog.String("tracks", strings.Join(st, ",")))
	}
	if len(r.UID) > 0 {
		attrs = append(attrs, slog.String("uid", Mask(strings.ToUpper(hex.EncodeToString(r.UID)))))
	}
	if r.Data != "" {
		attrs = append(attrs, slog.String("data", Mask(r.Data)))
	}
	return slog.GroupValue(attrs...)
}

// GoString masks too, so %#v cannot print card data.
func (r Read) GoString() string { return "decode.Read{" + r.String() + "}" }

// GoString masks too, so %#v cannot print card data.
func (t Track) GoString() string { return "decode.Track{" + t.String() + "}" }

// String shows the track number, status and masked data.
func (t Track) String() string {
	if t.Data == "" {
		return fmt.Sprintf("%d:%s", t.N, t.Status)
	}
	return fmt.Sprintf("%d:%s:%s", t.N, t.Status, Mask(t.Data))
}

// LogValue masks the track data for log/slog.
func (t Track) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Mask hides all but the first 6 and last 4 characters of strings of 13 or
// more characters (a card number keeps its issuer prefix and last four), all
// but the last 4 of strings of 5–12 characters, and everything of shorter
// strings. The length is preserved.
func Mask(s string) string {
	r := []rune(s)
	n := len(r)
	keepHead, keepTail := 0, 0
	switch {
	case n >= 13:
		keepHead, keepTail = 6, 4
	case n >= 5:
		keepTail = 4
	}
	out := make([]rune, n)
	for i, c := range r {
		if i < keepHead || i >= n-keepTail {
			// Control characters would let a masked value forge log lines.
			if c < 0x20 || c == 0x7f {
				c = '.'
			}
			out[i] = c
		} else {
			out[i] = '*'
		}
	}
	return string(out)
}

// Error is a decode or rule failure with a stable code and a hint for the
// cashier or installer. It never contains card data.
type Error struct {
	Code    string // see the Err* sentinels
	Message string
	Hint    string
	// HintZH is Hint in Chinese, saying the same thing; set where the hint
	// is meant for the cashier (the card rule's errors, see token.Hints).
	HintZH string
	err    error // sentinel
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return e.Message + " (" + e.Hint + ")"
	}
	return e.Message
}

// Unwrap returns the sentinel (ErrNoData, ErrChecksum, …) for errors.Is.
func (e *Error) Unwrap() error { return e.err }

// Sentinels matched with errors.Is; the Error.Code is the sentinel's code.
var (
	// ErrNoData: the frame carries no read (PN532 ACK, no card in field,
	// empty line). Skip it silently.
	ErrNoData = errors.New("no_data")
	// ErrChecksum: a checksum or LRC failed.
	ErrChecksum = errors.New("checksum")
	// ErrFormat: the frame is not what the decoder expects.
	ErrFormat = errors.New("format")
	// ErrBadRead: a swipe with no usable track.
	ErrBadRead = errors.New("bad_read")
	// ErrNACK: the PN532 asked for the last command again.
	ErrNACK = errors.New("nack")
	// ErrRule: the read does not satisfy the card rule (used by token).
	ErrRule = errors.New("rule")
)

// NewError builds an *Error for sentinel kind (one of the Err* values).
func NewError(kind error, hint, format string, args ...any) *Error {
	return &Error{Code: kind.Error(), Message: fmt.Sprintf(format, args...), Hint: hint, err: kind}
}

// Decoder decodes one frame.
type Decoder func(frame []byte) (Read, error)

// ByName returns the decoder for a config name: "msr", "msr:lrc" (the
// reader appends an LRC character after every end sentinel), "em4100",
// "parallax", "pn532", "barcode", or "uid:<format>" for keyboard-wedge RFID
// readers (format: see UIDFormats).
func ByName(decoder string) (func([]byte) (Read, error), error) {
	name, arg, _ := strings.Cut(strings.TrimSpace(decoder), ":")
	switch strings.ToLower(name) {
	case "msr":
		switch strings.ToLower(arg) {
		case "":
			return MSR, nil
		case "lrc":
			return MSRWith(MSROptions{LRC: true}), nil
		}
		return nil, fmt.Errorf("decode: msr option %q unknown; use msr or msr:lrc", arg)
	case "em4100", "rdm6300":
		return EM4100, nil
	case "parallax":
		return Parallax, nil
	case "pn532":
		return PN532, nil
	case "barcode":
		return Barcode, nil
	case "uid":
		f := strings.ToLower(arg)
		if !validUIDFormat(f) {
			return nil, fmt.Errorf("decode: uid format %q unknown; use one of %s", arg, strings.Join(UIDFormats, ", "))
		}
		return func(b []byte) (Read, error) { return WedgeUID(string(b), f) }, nil
	}
	return nil, fmt.Errorf("decode: decoder %q unknown; use msr, msr:lrc, em4100, parallax, pn532, barcode or uid:<format>", decoder)
}

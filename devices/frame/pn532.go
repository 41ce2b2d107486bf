package frame

import (
	"errors"
	"fmt"
	"time"
)

// ErrMalformed: bytes that looked like a frame start failed the frame's own
// length check and were skipped.
var ErrMalformed = errors.New("malformed frame skipped")

// pn532 frames a PN532 HSU stream. Each emitted frame starts at the start
// code 00 FF and ends with the data checksum (normal and extended frames) or
// is the 4-byte ACK (00 FF 00 FF) / NACK (00 FF FF 00). Preamble, postamble
// and noise between frames are discarded; the data checksum is left to the
// decoder so a corrupted frame surfaces as a checksum error.
type pn532 struct{ base }

// expire drops a partial frame older than the gap; a lone 00 (postamble,
// or a preamble never followed by a start code) is not a frame and is
// dropped silently.
func (f *pn532) expire(now time.Time) {
	if len(f.buf) < 2 && f.gap > 0 && !f.last.IsZero() && now.Sub(f.last) >= f.gap {
		f.buf = f.buf[:0]
	}
	f.stale(now)
}

func (f *pn532) Push(p []byte, at time.Time) [][]byte {
	f.expire(at)
	f.last = at
	f.buf = append(f.buf, p...)
	var out [][]byte
	for {
		fr, more := f.next()
		if fr != nil {
			out = append(out, fr)
		}
		if !more {
			return out
		}
	}
}

// next extracts at most one frame from the buffer; more reports whether the
// buffer may hold another.
func (f *pn532) next() (frame []byte, more bool) {
	b := f.buf
	i := 0
	for i+1 < len(b) && !(b[i] == 0x00 && b[i+1] == 0xFF) {
		i++
	}
	if i+1 >= len(b) {
		// No start code: keep a trailing 00 that may begin one.
		if len(b) > 0 && b[len(b)-1] == 0x00 {
			f.buf = append(f.buf[:0], 0x00)
		} else {
			f.buf = f.buf[:0]
		}
		return nil, false
	}
	b = b[i:]
	if len(b) < 4 {
		f.buf = append(f.buf[:0], b...)
		return nil, false
	}
	skip := func(err error) ([]byte, bool) {
		if err != nil {
			f.fail(err)
		}
		f.buf = append(f.buf[:0], b[1:]...)
		return nil, true
	}
	emit := func(n int) ([]byte, bool) {
		fr := append([]byte(nil), b[:n]...)
		f.buf = append(f.buf[:0], b[n:]...)
		return fr, true
	}
	switch {
	case b[2] == 0x00 && b[3] == 0xFF: // ACK
		return emit(4)
	case b[2] == 0xFF && b[3] == 0x00: // NACK
		return emit(4)
	}
	var hdr, n int
	if b[2] == 0xFF && b[3] == 0xFF { // extended frame: LENM LENL LCS
		if len(b) < 7 {
			f.buf = append(f.buf[:0], b...)
			return nil, false
		}
		if byte(b[4]+b[5]+b[6]) != 0 {
			return skip(fmt.Errorf("%w: PN532 extended length checksum mismatch", ErrMalformed))
		}
		hdr, n = 7, int(b[4])<<8|int(b[5])
	} else {
		if byte(b[2]+b[3]) != 0 {
			return skip(fmt.Errorf("%w: PN532 length checksum mismatch", ErrMalformed))
		}
		hdr, n = 4, int(b[2])
	}
	if n == 0 {
		return skip(fmt.Errorf("%w: PN532 frame with zero length", ErrMalformed))
	}
	total := hdr + n + 1 // + DCS
	if total > f.max {
		return skip(fmt.Errorf("%w: PN532 frame of %d bytes exceeds max_frame %d", ErrTooLong, total, f.max))
	}
	if len(b) < total {
		f.buf = append(f.buf[:0], b...)
		return nil, false
	}
	return emit(total)
}

func (f *pn532) Flush(now time.Time) [][]byte { f.expire(now); return nil }

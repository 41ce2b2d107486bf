// Package frame cuts a reader's byte stream into frames (one read each).
//
// Pure code: no I/O, no goroutines, no clock. The caller passes the arrival
// time of every chunk so idle-gap framing and stale-partial discarding are
// deterministic and replayable from recordings.
package frame

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Framer turns chunks of bytes into complete frames.
//
// Push returns the frames completed by p (each a fresh slice the caller may
// keep). Flush returns a frame that is complete because nothing arrived for
// the configured gap (idle-gap framing) and discards stale partial frames;
// call it from a timer. Reset drops any partial frame (e.g. after an unplug,
// so a cut-off read is never half-delivered). Errors returns, and clears, the
// framing problems seen since the last call (overlong frames, partial frames
// discarded); each wraps ErrTooLong or ErrIncomplete.
type Framer interface {
	Push(p []byte, at time.Time) [][]byte
	Flush(now time.Time) [][]byte
	Reset()
	Errors() []error
}

// Config selects and tunes a framer.
type Config struct {
	// Kind is "terminator", "stx_etx", "idle_gap", "fixed" or "pn532".
	Kind string `yaml:"kind" json:"kind"`
	// Terminator for Kind "terminator": the byte that ends a frame, "CR",
	// "LF", "TAB", "CRLF" or "LFCR" (both: the LF ends it), or "ANY" (CR, LF
	// or TAB). A CR or LF next to the end byte belongs to the terminator, so
	// a reader sending CR LF or LF CR reads with any of them.
	Terminator string `yaml:"terminator" json:"terminator"`
	// Gap: for "idle_gap" the silence that ends a frame; for the other kinds,
	// when > 0, a partial frame older than Gap is discarded (a read cut off
	// mid-frame must not merge with the next one).
	Gap time.Duration `yaml:"gap" json:"gap"`
	// Length of every frame for Kind "fixed".
	Length int `yaml:"length" json:"length"`
	// MaxFrame bounds a frame's size; longer input is discarded and reported
	// through Errors. 0 means DefaultMaxFrame.
	MaxFrame int `yaml:"max_frame" json:"max_frame"`
}

// DefaultMaxFrame is the frame size bound when Config.MaxFrame is 0. A full
// three-track swipe is under 250 bytes; QR codes can be a couple of KiB.
const DefaultMaxFrame = 4096

// Control bytes used by the framers.
const (
	STX = 0x02
	ETX = 0x03
)

var (
	// ErrTooLong: a frame exceeded MaxFrame and was discarded.
	ErrTooLong = errors.New("frame too long")
	// ErrIncomplete: a partial frame was discarded (stale, or a new frame
	// started before it ended).
	ErrIncomplete = errors.New("incomplete frame discarded")
)

// New builds the framer described by c.
func New(c Config) (Framer, error) {
	if c.MaxFrame < 0 {
		return nil, fmt.Errorf("frame: max_frame %d is negative; use 0 for the default %d", c.MaxFrame, DefaultMaxFrame)
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.Gap < 0 {
		return nil, fmt.Errorf("frame: gap %v is negative", c.Gap)
	}
	b := base{max: c.MaxFrame, gap: c.Gap}
	switch strings.ToLower(c.Kind) {
	case "terminator":
		t := &terminator{base: b}
		switch strings.ToUpper(c.Terminator) {
		case "CR":
			t.ends['\r'] = true
		case "LF", "CRLF", "LFCR":
			t.ends['\n'] = true
		case "TAB":
			t.ends['\t'] = true
		case "ANY":
			t.ends['\r'], t.ends['\n'], t.ends['\t'] = true, true, true
		default:
			return nil, fmt.Errorf("frame: terminator %q unknown; use CR, LF, CRLF, LFCR, TAB or ANY", c.Terminator)
		}
		return t, nil
	case "stx_etx":
		return &stxetx{base: b}, nil
	case "idle_gap":
		if c.Gap <= 0 {
			return nil, fmt.Errorf("frame: idle_gap framing needs gap > 0 (e.g. 50ms)")
		}
		return &idleGap{base: b}, nil
	case "fixed":
		if c.Length <= 0 {
			return nil, fmt.Errorf("frame: fixed framing needs length > 0")
		}
		if c.Length > c.MaxFrame {
			return nil, fmt.Errorf("frame: fixed length %d exceeds max_frame %d", c.Length, c.MaxFrame)
		}
		return &fixed{base: b, n: c.Length}, nil
	case "pn532":
		return &pn532{base: b}, nil
	default:
		return nil, fmt.Errorf("frame: kind %q unknown; use terminator, stx_etx, idle_gap, fixed or pn532", c.Kind)
	}
}

// base holds what every framer shares: the partial frame, its last arrival
// time, the size bound and the accumulated errors.
type base struct {
	max      int
	gap      time.Duration
	buf      []byte
	last     time.Time
	dropping bool // discarding an overlong frame until its end
	errs     []error
}

func (b *base) Errors() []error {
	e := b.errs
	b.errs = nil
	return e
}

func (b *base) Reset() {
	b.buf = b.buf[:0]
	b.dropping = false
	b.last = time.Time{}
}

func (b *base) fail(err error) {
	// Bound the error list too: a noisy line must not grow memory.
	if len(b.errs) < 64 {
		b.errs = append(b.errs, err)
	}
}

// stale discards a partial frame whose last byte is older than the gap and
// reports whether the gap had elapsed.
func (b *base) stale(now time.Time) bool {
	if b.gap <= 0 || b.last.IsZero() || now.Sub(b.last) < b.gap {
		return false
	}
	if len(b.buf) > 0 {
		b.fail(fmt.Errorf("%w: %d bytes with no end after %v", ErrIncomplete, len(b.buf), b.gap))
	}
	b.buf = b.buf[:0]
	b.dropping = false
	return true
}

// add appends c to the partial frame, switching to drop mode when the frame
// would exceed the bound.
func (b *base) add(c byte) {
	if b.dropping {
		return
	}
	if len(b.buf) >= b.max {
		b.fail(fmt.Errorf("%w: more than %d bytes; raise max_frame or check the framing settings", ErrTooLong, b.max))
		b.buf = b.buf[:0]
		b.dropping = true
		return
	}
	b.buf = append(b.buf, c)
}

// take returns a copy of the partial frame and clears it.
func (b *base) take() []byte {
	f := append([]byte(nil), b.buf...)
	b.buf = b.buf[:0]
	return f
}

// terminator ends a frame at an end byte. CR and LF are line-suffix bytes:
// at the start of a frame they are dropped (the second byte of a CR LF or
// LF CR pair, however late it comes and in whichever read), and right
// before an end byte they are part of the terminator; only between data
// bytes are they frame data (an MSR reader that puts tracks on separate
// lines). They wait in pend until the next byte says which it is.
type terminator struct {
	base
	ends [256]bool
	pend []byte // CR/LF bytes after the last data byte of the partial frame
}

func lineByte(c byte) bool { return c == '\r' || c == '\n' }

func (t *terminator) Reset() { t.base.Reset(); t.pend = t.pend[:0] }

func (t *terminator) Push(p []byte, at time.Time) [][]byte {
	if t.stale(at) {
		t.pend = t.pend[:0]
	}
	t.last = at
	var out [][]byte
	for _, c := range p {
		switch {
		case t.ends[c]:
			t.pend = t.pend[:0]
			if t.dropping {
				t.dropping = false
				continue
			}
			if len(t.buf) > 0 {
				out = append(out, t.take())
			}
		case lineByte(c):
			if t.dropping || len(t.buf) == 0 {
				continue
			}
			t.pend = append(t.pend, c)
			if len(t.pend) > t.max {
				t.flushPend() // a run this long is no terminator: bound it
			}
		default:
			t.flushPend()
			t.add(c)
		}
	}
	return out
}

// flushPend makes the waiting CR/LF bytes frame data.
func (t *terminator) flushPend() {
	for _, c := range t.pend {
		t.add(c)
	}
	t.pend = t.pend[:0]
}

func (t *terminator) Flush(now time.Time) [][]byte {
	if t.stale(now) {
		t.pend = t.pend[:0]
	}
	return nil
}

type stxetx struct {
	base
	in bool // inside STX…ETX
}

func (s *stxetx) Reset() { s.base.Reset(); s.in = false }

func (s *stxetx) Push(p []byte, at time.Time) [][]byte {
	if s.stale(at) {
		s.in = false
	}
	s.last = at
	var out [][]byte
	for _, c := range p {
		switch {
		case c == STX:
			if s.in && len(s.buf) > 0 {
				s.fail(fmt.Errorf("%w: %d bytes, then a new STX before ETX", ErrIncomplete, len(s.buf)))
			}
			s.buf = s.buf[:0]
			s.dropping = false
			s.in = true
		case !s.in:
			// Noise between frames is discarded.
		case c == ETX:
			s.in = false
			if s.dropping {
				s.dropping = false
				continue
			}
			out = append(out, s.take())
		default:
			s.add(c)
		}
	}
	return out
}

func (s *stxetx) Flush(now time.Time) [][]byte {
	if s.stale(now) {
		s.in = false
	}
	return nil
}

type idleGap struct{ base }

func (g *idleGap) Push(p []byte, at time.Time) [][]byte {
	var out [][]byte
	if !g.last.IsZero() && at.Sub(g.last) >= g.gap {
		if len(g.buf) > 0 {
			out = append(out, g.take())
		}
		g.dropping = false
	}
	g.last = at
	for _, c := range p {
		g.add(c)
	}
	return out
}

func (g *idleGap) Flush(now time.Time) [][]byte {
	if g.last.IsZero() || now.Sub(g.last) < g.gap {
		return nil
	}
	g.dropping = false
	if len(g.buf) == 0 {
		return nil
	}
	return [][]byte{g.take()}
}

type fixed struct {
	base
	n int
}

func (f *fixed) Push(p []byte, at time.Time) [][]byte {
	f.stale(at)
	f.last = at
	var out [][]byte
	for _, c := range p {
		f.buf = append(f.buf, c)
		if len(f.buf) == f.n {
			out = append(out, f.take())
		}
	}
	return out
}

func (f *fixed) Flush(now time.Time) [][]byte { f.stale(now); return nil }
